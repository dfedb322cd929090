//! libgit2.zig: libgit2 1.9 with HTTPS on mbedTLS, http-parser, SHA1DC,
//! zlib, musl's regcomp and exec-based SSH (the system `ssh`).
//!
//! The feature switches are in vendor/config/libgit2/git2_features.h.
//! Explicit file lists: the hash and TLS backends are picked by hand, the
//! rest of each directory is compiled whole (the TLS/SSH files for other
//! backends compile to nothing, and libgit2.c's init table needs them).
const std = @import("std");
const common = @import("common.zig");
const mbedtls = @import("mbedtls.zig");
const zlib = @import("zlib.zig");
const http_parser = @import("http_parser.zig");

const root = "vendor/src/libgit2";

pub fn build(ctx: common.Ctx) *std.Build.Step.Compile {
    const b = ctx.b;
    const lib = ctx.staticLib("git2");
    mbedtls.use(lib);
    zlib.use(lib);
    http_parser.use(lib);
    use(lib);
    for ([_][]const u8{ "src/libgit2", "src/util", "deps/xdiff" }) |d|
        lib.addIncludePath(.{ .path = b.fmt("{s}/{s}", .{ root, d }) });

    const flags = ctx.flags(&.{
        "-std=gnu90",
        "-D_GNU_SOURCE",
        "-DSHA1DC_NO_STANDARD_INCLUDES=1",
        "-DSHA1DC_CUSTOM_INCLUDE_SHA1_C=\"git2_util.h\"",
        "-DSHA1DC_CUSTOM_INCLUDE_UBC_CHECK_C=\"git2_util.h\"",
    });
    const whole = [_][]const u8{
        root ++ "/src/libgit2",
        root ++ "/src/libgit2/streams",
        root ++ "/src/libgit2/transports",
        root ++ "/src/util",
        root ++ "/src/util/allocators",
        root ++ "/src/util/unix",
        root ++ "/src/util/hash/sha1dc",
        root ++ "/deps/xdiff",
    };
    lib.addCSourceFiles(common.cFilesIn(b, &whole, &.{}), flags);
    lib.addCSourceFiles(&.{
        root ++ "/src/util/hash/collisiondetect.c",
        root ++ "/src/util/hash/mbedtls.c",
    }, flags);
    return lib;
}

pub fn use(step: *std.Build.Step.Compile) void {
    step.addIncludePath(.{ .path = "vendor/config/libgit2" });
    step.addIncludePath(.{ .path = "vendor/config/libgit2/git2" });
    step.addIncludePath(.{ .path = root ++ "/include" });
}
