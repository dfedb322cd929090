//! mbedtls.zig: mbedTLS 3.6 LTS (TLS 1.2 and 1.3 client, X.509, PSA crypto).
//!
//! All of library/*.c is compiled; what is not configured compiles to
//! nothing.  ccr's config (vendor/config/mbedtls/ccr_mbedtls_config.h) is
//! applied through MBEDTLS_USER_CONFIG_FILE, here and in every library that
//! includes mbedTLS headers (see `use`), so that struct layouts agree.
//! entropy_getrandom.c supplies entropy without /dev.
const std = @import("std");
const common = @import("common.zig");

const config_macro = "\"ccr_mbedtls_config.h\"";

pub fn build(ctx: common.Ctx) *std.Build.Step.Compile {
    const lib = ctx.staticLib("mbedtls");
    use(lib);
    lib.addIncludePath(.{ .path = "vendor/src/mbedtls/library" });
    lib.addCSourceFiles(common.cFiles(ctx.b, "vendor/src/mbedtls/library", &.{}), ctx.flags(&.{}));
    lib.addCSourceFiles(&.{"vendor/config/mbedtls/entropy_getrandom.c"}, ctx.flags(&.{}));
    return lib;
}

/// Give `step` mbedTLS's headers with ccr's config.
pub fn use(step: *std.Build.Step.Compile) void {
    step.addIncludePath(.{ .path = "vendor/config/mbedtls" });
    step.addIncludePath(.{ .path = "vendor/src/mbedtls/include" });
    step.defineCMacro("MBEDTLS_USER_CONFIG_FILE", config_macro);
}
