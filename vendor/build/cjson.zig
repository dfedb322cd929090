//! cjson.zig: cJSON 1.7.18 (cJSON.c only; cJSON_Utils is not used).
const std = @import("std");
const common = @import("common.zig");

pub fn build(ctx: common.Ctx) *std.Build.Step.Compile {
    const lib = ctx.staticLib("cjson");
    lib.addCSourceFiles(&.{"vendor/src/cjson/cJSON.c"}, ctx.flags(&.{}));
    return lib;
}

pub fn use(step: *std.Build.Step.Compile) void {
    step.addIncludePath(.{ .path = "vendor/src/cjson" });
}
