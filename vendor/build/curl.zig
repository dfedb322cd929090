//! curl.zig: libcurl 8.14 over mbedTLS and zlib, HTTP(S) only.
//!
//! Every lib/**/*.c is compiled: backends and protocols that
//! vendor/config/curl/curl_config.h leaves out are #ifdef'd away inside
//! their files, and some "unused" files still provide symbols (vquic.c).
const std = @import("std");
const common = @import("common.zig");
const mbedtls = @import("mbedtls.zig");
const zlib = @import("zlib.zig");

const dirs = [_][]const u8{ "", "/curlx", "/vauth", "/vquic", "/vssh", "/vtls" };

pub fn build(ctx: common.Ctx) *std.Build.Step.Compile {
    const lib = ctx.staticLib("curl");
    mbedtls.use(lib);
    zlib.use(lib);
    use(lib);
    lib.addIncludePath(.{ .path = "vendor/config/curl" });
    lib.addIncludePath(.{ .path = "vendor/src/curl/lib" });
    var paths: [dirs.len][]const u8 = undefined;
    for (dirs, 0..) |d, i| paths[i] = ctx.b.fmt("vendor/src/curl/lib{s}", .{d});
    lib.addCSourceFiles(common.cFilesIn(ctx.b, &paths, &.{}), ctx.flags(&.{
        "-DHAVE_CONFIG_H", "-DBUILDING_LIBCURL", "-D_GNU_SOURCE",
    }));
    return lib;
}

pub fn use(step: *std.Build.Step.Compile) void {
    step.addIncludePath(.{ .path = "vendor/src/curl/include" });
    step.defineCMacro("CURL_STATICLIB", "1");
}
