//! zlib.zig: zlib 1.3.1, the 15 core files (no contrib/, no tests).
//! Used by curl (content decoding) and libgit2 (pack files).
const std = @import("std");
const common = @import("common.zig");

const files = [_][]const u8{
    "adler32.c", "compress.c", "crc32.c",    "deflate.c",  "gzclose.c",
    "gzlib.c",   "gzread.c",   "gzwrite.c",  "infback.c",  "inffast.c",
    "inflate.c", "inftrees.c", "trees.c",    "uncompr.c",  "zutil.c",
};

pub fn build(ctx: common.Ctx) *std.Build.Step.Compile {
    const lib = ctx.staticLib("z");
    lib.addCSourceFiles(common.under(ctx.b, "vendor/src/zlib", &files), ctx.flags(&.{
        "-DHAVE_UNISTD_H", "-DHAVE_STDARG_H",
    }));
    return lib;
}

pub fn use(step: *std.Build.Step.Compile) void {
    step.addIncludePath(.{ .path = "vendor/src/zlib" });
}
