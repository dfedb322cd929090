//! http_parser.zig: http-parser 2.9.4, the HTTP/1.x parser used by
//! libgit2's smart HTTP transport and by ccr's own HTTP server.
//! HTTP_PARSER_STRICT=1 rejects the lenient forms that enable smuggling.
const std = @import("std");
const common = @import("common.zig");

pub fn build(ctx: common.Ctx) *std.Build.Step.Compile {
    const lib = ctx.staticLib("http_parser");
    lib.addCSourceFiles(&.{"vendor/src/http-parser/http_parser.c"}, ctx.flags(&.{"-DHTTP_PARSER_STRICT=1"}));
    return lib;
}

pub fn use(step: *std.Build.Step.Compile) void {
    step.addIncludePath(.{ .path = "vendor/src/http-parser" });
    step.defineCMacro("HTTP_PARSER_STRICT", "1");
}
