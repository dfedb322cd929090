//! bearssl.zig: BearSSL 0.6, used by ccr for its own crypto (SHA-256,
//! HMAC, AES-GCM, RSA signatures for Google's JWT flow).  Every module
//! directory is compiled; the pre-generated T0 code is in Debian's tarball.
const std = @import("std");
const common = @import("common.zig");

const dirs = [_][]const u8{
    "aead", "codec", "ec", "hash", "int", "kdf", "mac", "rand", "rsa", "ssl", "symcipher", "x509",
};

pub fn build(ctx: common.Ctx) *std.Build.Step.Compile {
    const lib = ctx.staticLib("bearssl");
    use(lib);
    lib.addIncludePath(.{ .path = "vendor/src/bearssl/src" });
    var paths: [dirs.len][]const u8 = undefined;
    for (dirs, 0..) |d, i| paths[i] = ctx.b.fmt("vendor/src/bearssl/src/{s}", .{d});
    lib.addCSourceFiles(common.cFilesIn(ctx.b, &paths, &.{}), ctx.flags(&.{}));
    lib.addCSourceFiles(&.{"vendor/src/bearssl/src/settings.c"}, ctx.flags(&.{}));
    return lib;
}

pub fn use(step: *std.Build.Step.Compile) void {
    step.addIncludePath(.{ .path = "vendor/src/bearssl/inc" });
}
