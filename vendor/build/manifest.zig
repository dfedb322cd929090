//! manifest.zig: `zig build sources` writes <prefix>/sources.json, the C
//! sources of ccr and of every library it links, read back from the very
//! Compile steps that build.zig and vendor/build/*.zig configure.
//!
//! Other builds of the same code (scripts/build-asan: clang with ASan and
//! UBSan, and the libFuzzer targets) read this file instead of keeping
//! their own file lists, so there is one source of truth.  For each
//! artifact it lists (ccr as "executable", the unit-test binary ccr-unit
//! as "test", then the libraries in link order): its name, its include directories
//! (relative to the build root), its macros ("NAME=VALUE", from
//! defineCMacro) and its source groups, each a list of files with the flags
//! they are compiled with.  A generated source (the CA bundle) is produced
//! first, and named by its path under the build root.
//!
//! Nothing here touches the release executable: the step only reads the
//! configured steps, so `zig build` stays byte-identical.
const std = @import("std");
const Compile = std.Build.Step.Compile;

const Manifest = struct {
    step: std.Build.Step,
    exe: *Compile,
    unit: *Compile,
    libs: []const *Compile,
    out: []const u8,
};

/// Add the `sources` step describing `exe`, the unit-test executable
/// `unit` and `libs` (in link order).
pub fn addStep(b: *std.Build, exe: *Compile, unit: *Compile, libs: []const *Compile) void {
    const m = b.allocator.create(Manifest) catch @panic("out of memory");
    m.* = .{
        .step = std.Build.Step.init(.{ .id = .custom, .name = "write sources.json", .owner = b, .makeFn = make }),
        .exe = exe,
        .unit = unit,
        .libs = b.allocator.dupe(*Compile, libs) catch @panic("out of memory"),
        .out = b.getInstallPath(.prefix, "sources.json"),
    };
    // Generated sources must exist before their path can be written.
    for ([_]*Compile{ exe, unit }) |c| for (c.link_objects.items) |lo| switch (lo) {
        .c_source_file => |f| switch (f.file) {
            .generated => |g| m.step.dependOn(g.step),
            else => {},
        },
        else => {},
    };
    const step = b.step("sources", "Write <prefix>/sources.json: every C source, include dir and flag of ccr and its libraries");
    step.dependOn(&m.step);
}

const Group = struct { files: []const []const u8, flags: []const []const u8 };
const Artifact = struct {
    name: []const u8,
    kind: []const u8,
    include_dirs: []const []const u8,
    defines: []const []const u8,
    sources: []const Group,
};

fn make(step: *std.Build.Step, _: *std.Progress.Node) anyerror!void {
    const m = @fieldParentPtr(Manifest, "step", step);
    const b = step.owner;
    var arts = std.ArrayList(Artifact).init(b.allocator);
    try arts.append(try describe(b, m.exe, "executable"));
    try arts.append(try describe(b, m.unit, "test"));
    for (m.libs) |lib| try arts.append(try describe(b, lib, "library"));

    var text = std.ArrayList(u8).init(b.allocator);
    try std.json.stringify(.{ .artifacts = arts.items }, .{ .whitespace = .indent_1 }, text.writer());
    try text.append('\n');
    if (std.fs.path.dirname(m.out)) |dir| try std.fs.cwd().makePath(dir);
    try std.fs.cwd().writeFile(m.out, text.items);
}

fn describe(b: *std.Build, c: *Compile, kind: []const u8) !Artifact {
    var incs = std.ArrayList([]const u8).init(b.allocator);
    for (c.include_dirs.items) |inc| switch (inc) {
        .path, .path_system => |p| try incs.append(try rel(b, p.getPath(b))),
        // A linked library's installed headers: none of ours installs any.
        .other_step => {},
        .config_header_step => return error.ConfigHeaderNotSupported,
    };
    var groups = std.ArrayList(Group).init(b.allocator);
    for (c.link_objects.items) |lo| switch (lo) {
        .c_source_files => |g| try groups.append(.{ .files = g.files, .flags = g.flags }),
        .c_source_file => |f| {
            const files = try b.allocator.alloc([]const u8, 1);
            files[0] = try rel(b, f.file.getPath(b));
            try groups.append(.{ .files = files, .flags = f.flags });
        },
        .other_step, .system_lib => {},
        .static_path, .assembly_file => return error.SourceKindNotSupported,
    };
    return .{ .name = c.name, .kind = kind, .include_dirs = incs.items, .defines = c.c_macros.items, .sources = groups.items };
}

/// `path` relative to the build root when it lies inside it.
fn rel(b: *std.Build, path: []const u8) ![]const u8 {
    const root = try std.fs.realpathAlloc(b.allocator, b.build_root.path orelse ".");
    const abs = try std.fs.path.resolve(b.allocator, &.{path});
    if (std.mem.startsWith(u8, abs, root) and abs.len > root.len and abs[root.len] == '/')
        return abs[root.len + 1 ..];
    return abs;
}
