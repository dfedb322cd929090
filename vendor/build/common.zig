//! common.zig: what every vendored library's build shares.
//!
//! `Ctx` carries the target, the optimisation mode and the flags that all
//! C code gets: no UBSan (Zig's Debug/ReleaseSafe would trap in libgit2's
//! sha1dc on unaligned loads), no warnings from third-party code, and a
//! file-prefix map so that no checkout path reaches the binary (the build is
//! byte-reproducible from any directory).  `cFiles` lists a directory's C
//! files, sorted, because the std build API has no glob.
const std = @import("std");

pub const Ctx = struct {
    b: *std.Build,
    target: std.zig.CrossTarget,
    optimize: std.builtin.OptimizeMode,
    /// Flags for third-party C code.
    vendor_flags: []const []const u8,
    /// Root of the unpacked sources (vendor/src), relative to the build root.
    src: []const u8 = "vendor/src",

    pub fn path(self: Ctx, comptime fmt: []const u8, args: anytype) []const u8 {
        return self.b.fmt(fmt, args);
    }

    pub fn staticLib(self: Ctx, name: []const u8) *std.Build.Step.Compile {
        const lib = self.b.addStaticLibrary(.{
            .name = name,
            .target = self.target,
            .optimize = self.optimize,
        });
        lib.linkLibC();
        return lib;
    }

    /// Flags for the vendored library `lib`: the common ones plus `extra`.
    pub fn flags(self: Ctx, extra: []const []const u8) []const []const u8 {
        return std.mem.concat(self.b.allocator, []const u8, &.{ self.vendor_flags, extra }) catch @panic("out of memory");
    }
};

/// The sorted paths of the `.c` files directly inside `dir` (relative to the
/// build root), minus the base names in `exclude`.
pub fn cFiles(b: *std.Build, dir: []const u8, exclude: []const []const u8) []const []const u8 {
    var list = std.ArrayList([]const u8).init(b.allocator);
    var it_dir = b.build_root.handle.openIterableDir(dir, .{}) catch |err| {
        // ccr's own directories may be empty (git keeps no empty directory).
        if (err == error.FileNotFound and std.mem.startsWith(u8, dir, "src")) return list.items;
        std.debug.panic("cannot open {s} ({s}): run vendor/fetch first", .{ dir, @errorName(err) });
    };
    defer it_dir.close();
    var it = it_dir.iterate();
    while (it.next() catch @panic("cannot read directory")) |entry| {
        if (entry.kind != .file or !std.mem.endsWith(u8, entry.name, ".c")) continue;
        if (contains(exclude, entry.name)) continue;
        list.append(b.fmt("{s}/{s}", .{ dir, entry.name })) catch @panic("out of memory");
    }
    std.sort.block([]const u8, list.items, {}, lessThan);
    return list.items;
}

/// cFiles over several directories, concatenated.
pub fn cFilesIn(b: *std.Build, dirs: []const []const u8, exclude: []const []const u8) []const []const u8 {
    var all = std.ArrayList([]const u8).init(b.allocator);
    for (dirs) |d| all.appendSlice(cFiles(b, d, exclude)) catch @panic("out of memory");
    return all.items;
}

/// `names` prefixed with `dir/`.
pub fn under(b: *std.Build, dir: []const u8, names: []const []const u8) []const []const u8 {
    var list = std.ArrayList([]const u8).init(b.allocator);
    for (names) |n| list.append(b.fmt("{s}/{s}", .{ dir, n })) catch @panic("out of memory");
    return list.items;
}

fn contains(haystack: []const []const u8, needle: []const u8) bool {
    for (haystack) |h| if (std.mem.eql(u8, h, needle)) return true;
    return false;
}

fn lessThan(_: void, a: []const u8, b: []const u8) bool {
    return std.mem.lessThan(u8, a, b);
}
