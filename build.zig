//! build.zig: builds `zig-out/bin/ccr`, one fully static executable.
//!
//!   zig build                         x86_64-linux-musl, ReleaseFast, stripped
//!   zig build -Dtarget=aarch64-linux-musl
//!   zig build -Doptimize=Debug -Dstrip=false      (UBSan traps in ccr's code)
//!   zig build selftest                run `ccr selftest` after building
//!   zig build test                    build zig-out/bin/ccr-unit (the unit
//!                                     tests) and run it
//!   zig build unit                    only build zig-out/bin/ccr-unit
//!   zig build sources -p DIR          write DIR/sources.json, the file lists
//!                                     and flags (scripts/build-asan reads it)
//!
//! The third-party libraries come from the pinned Debian sources that
//! vendor/fetch unpacks into vendor/src; each has one build function in
//! vendor/build/<name>.zig.  The CA bundle of the build machine
//! (-Dca-bundle, default Debian's) is compiled in, so HTTPS works in an
//! image that holds nothing but the binary.
const std = @import("std");
const common = @import("vendor/build/common.zig");
const mbedtls = @import("vendor/build/mbedtls.zig");
const zlib = @import("vendor/build/zlib.zig");
const bearssl = @import("vendor/build/bearssl.zig");
const cjson = @import("vendor/build/cjson.zig");
const http_parser = @import("vendor/build/http_parser.zig");
const curl = @import("vendor/build/curl.zig");
const libgit2 = @import("vendor/build/libgit2.zig");
const manifest = @import("vendor/build/manifest.zig");

const ccr_version = "0.1.0";

/// ccr's own source directories: one per layer of the architecture.
const src_dirs = [_][]const u8{
    "src",          "src/util",  "src/crypto", "src/selftest", "src/net",
    "src/http",     "src/gcp",   "src/git",   "src/backend", "src/task",    "src/webhook", "src/serve",   "src/job",
    "src/tools",    "src/sandbox",
    "src/deploy",   "src/settings", "src/proxy",    "src/egress",
};

/// Unit-test files are named `*_test.c` and linked only into ccr-unit.
const unit_suffix = "_test.c";

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{ .default_target = .{
        .cpu_arch = .x86_64,
        .os_tag = .linux,
        .abi = .musl,
    } });
    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimisation mode (default ReleaseFast)") orelse .ReleaseFast;
    const strip = b.option(bool, "strip", "Strip symbols and debug info (default true)") orelse true;
    const ca_bundle = b.option([]const u8, "ca-bundle", "PEM bundle to compile in") orelse
        "/etc/ssl/certs/ca-certificates.crt";

    const root = std.fs.realpathAlloc(b.allocator, b.build_root.path orelse ".") catch @panic("cannot resolve the build root");
    const prefix_map = b.fmt("-ffile-prefix-map={s}/=", .{root});
    const ctx = common.Ctx{
        .b = b,
        .target = target,
        .optimize = optimize,
        .vendor_flags = b.allocator.dupe([]const u8, &.{ "-fno-sanitize=undefined", "-w", prefix_map }) catch @panic("oom"),
    };

    const libs = [_]*std.Build.Step.Compile{
        curl.build(ctx),    libgit2.build(ctx), mbedtls.build(ctx),     zlib.build(ctx),
        bearssl.build(ctx), cjson.build(ctx),   http_parser.build(ctx),
    };
    const own_flags = [_][]const u8{
        "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
        "-Wshadow", "-Wstrict-prototypes", "-Wvla", prefix_map,
        b.fmt("-DCCR_VERSION=\"{s}\"", .{ccr_version}),
    };
    const ca_source = caBundleSource(b, ca_bundle);
    const files = splitSources(b, common.cFilesIn(b, &src_dirs, &.{}));

    const exe = ccrExecutable(b, "ccr", ctx, &libs);
    exe.strip = strip;
    exe.addCSourceFiles(files.ccr, &own_flags);
    exe.addCSourceFile(.{ .file = ca_source, .flags = &.{ "-std=c11", prefix_map } });
    b.installArtifact(exe);

    const run_selftest = b.addRunArtifact(exe);
    run_selftest.addArg("selftest");
    const selftest_step = b.step("selftest", "Build, then run `ccr selftest`");
    selftest_step.dependOn(&run_selftest.step);

    // ccr-unit: the same sources and flags, main.c replaced by the unit
    // tests' main (src/selftest/unit_test.c); not part of the default
    // install, so `zig build` builds only what ships.
    const unit = ccrExecutable(b, "ccr-unit", ctx, &libs);
    unit.strip = false;
    unit.addCSourceFiles(files.unit, &own_flags);
    unit.addCSourceFile(.{ .file = ca_source, .flags = &.{ "-std=c11", prefix_map } });
    const install_unit = b.addInstallArtifact(unit, .{});
    b.step("unit", "Build zig-out/bin/ccr-unit, the unit tests").dependOn(&install_unit.step);
    const run_unit = b.addRunArtifact(unit);
    run_unit.step.dependOn(&install_unit.step);
    if (b.args) |args| run_unit.addArgs(args);
    b.step("test", "Build zig-out/bin/ccr-unit and run the unit tests (args after --: SUITE[/CASE]...)").dependOn(&run_unit.step);

    manifest.addStep(b, exe, unit, &libs);
}

/// A static executable of ccr's code linked with the vendored libraries.
fn ccrExecutable(b: *std.Build, name: []const u8, ctx: common.Ctx, libs: []const *std.Build.Step.Compile) *std.Build.Step.Compile {
    const exe = b.addExecutable(.{ .name = name, .target = ctx.target, .optimize = ctx.optimize });
    exe.linkage = .static;
    exe.linkLibC();
    for (libs) |lib| exe.linkLibrary(lib);
    mbedtls.use(exe);
    zlib.use(exe);
    bearssl.use(exe);
    cjson.use(exe);
    http_parser.use(exe);
    curl.use(exe);
    libgit2.use(exe);
    exe.addIncludePath(.{ .path = "src" });
    return exe;
}

/// ccr's sources split by binary: ccr gets all but the unit tests; ccr-unit
/// gets all but src/main.c, plus the unit tests.
fn splitSources(b: *std.Build, all: []const []const u8) struct { ccr: []const []const u8, unit: []const []const u8 } {
    var ccr = std.ArrayList([]const u8).init(b.allocator);
    var unit = std.ArrayList([]const u8).init(b.allocator);
    for (all) |f| {
        const is_test = std.mem.endsWith(u8, f, unit_suffix);
        if (!is_test) ccr.append(f) catch @panic("out of memory");
        if (!std.mem.eql(u8, f, "src/main.c")) unit.append(f) catch @panic("out of memory");
    }
    return .{ .ccr = ccr.items, .unit = unit.items };
}

/// A C file holding the CA bundle as a byte array (`ccr_ca_bundle`,
/// `ccr_ca_bundle_len`, NUL-terminated as mbedTLS's PEM parser wants).
fn caBundleSource(b: *std.Build, path: []const u8) std.Build.LazyPath {
    const data = std.fs.cwd().readFileAlloc(b.allocator, path, 8 << 20) catch |err|
        std.debug.panic("cannot read the CA bundle {s} ({s}): apt-get install ca-certificates, or pass -Dca-bundle=FILE", .{ path, @errorName(err) });
    var out = std.ArrayList(u8).init(b.allocator);
    const w = out.writer();
    w.writeAll("/* Generated by build.zig from the build machine's CA bundle. */\n") catch unreachable;
    w.writeAll("#include <stddef.h>\nconst unsigned char ccr_ca_bundle[] = {\n") catch unreachable;
    for (data, 0..) |c, i| {
        w.print("{d},", .{c}) catch unreachable;
        if (i % 24 == 23) w.writeByte('\n') catch unreachable;
    }
    w.print("0\n}};\nconst size_t ccr_ca_bundle_len = {d};\n", .{data.len}) catch unreachable;
    return b.addWriteFiles().add("ca_bundle.c", out.items);
}
