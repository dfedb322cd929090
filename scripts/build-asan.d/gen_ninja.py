#!/usr/bin/env python3
"""gen_ninja.py MANIFEST OUTDIR: write OUTDIR/build.ninja for the sanitizer build.

The file lists, include directories, macros and flags all come from
MANIFEST, the sources.json that `zig build sources` writes from build.zig's
own Compile steps (vendor/build/manifest.zig): nothing here names a source
file of ccr or of a library.

Two builds of the same code come out of it, compiled with Debian's clang:
  OUTDIR/ccr            ccr and every library with -fsanitize=address,undefined
                        (-fno-sanitize-recover=all: any UBSan report is fatal)
  OUTDIR/ccr-unit       the unit tests (the manifest's "test" artifact), the
                        same way; the objects it shares with ccr are built once
  OUTDIR/fuzz/NAME      one libFuzzer binary per tests/fuzz/NAME.c, linked
                        with ccr's own objects (main.c left out) rebuilt
                        with coverage (-fsanitize=fuzzer-no-link) and the
                        same sanitized libraries.
Flags changed from the manifest, and why:
  -fno-sanitize=undefined  dropped: the release build turns Zig's trapping UBSan
                           off for third-party code; here we want its reports.
  -ffile-prefix-map=...    dropped: it exists for reproducible release
                           binaries, and full paths make reports clickable.
Per-file exceptions (EXCEPTIONS below), each one a third-party choice that
is deliberate and correct on the targets ccr supports, never ccr's code:
  libgit2's sha1dc/        -fno-sanitize=alignment: SHA-1 collision detection
                           reads the input as 32-bit words at any address on
                           x86 and arm64 (SHA1DC_ALLOW_UNALIGNED_ACCESS,
                           its fast path), which UBSan's alignment check
                           reports on every unaligned buffer.
"""
import json
import os
import pathlib
import sys

CC = os.environ.get("CC_ASAN", "clang-14")
AR = os.environ.get("AR_ASAN", "llvm-ar-14")
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
BASE = ["-g", "-O1", "-fno-omit-frame-pointer"] + SAN
FUZZ = ["-fsanitize=fuzzer-no-link"]
FUZZ_COVERED_LIBS = ("cjson", "http_parser")
ROOT = os.getcwd()
EXCEPTIONS = [("vendor/src/libgit2/src/util/hash/sha1dc/", ["-fno-sanitize=alignment"])]


def esc(s):
    """Quote one argument for the shell command ninja runs, and for ninja."""
    if s and all(c.isalnum() or c in "-_=./,+:" for c in s):
        q = s
    else:
        q = "'" + s.replace("'", "'\\''") + "'"
    return q.replace("$", "$$")


def path_esc(p):
    return p.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def kept(flags):
    return [f for f in flags if f != "-fno-sanitize=undefined" and not f.startswith("-ffile-prefix-map=")]


def cflags(art, group_flags, extra):
    out = list(BASE) + extra + kept(group_flags)
    out += ["-I" + os.path.join(ROOT, d) for d in art["include_dirs"]]
    out += ["-D" + m for m in art["defines"]]
    return " ".join(esc(f) for f in out)


def objects(w, art, variant, extra, skip=(), built=None):
    """Compile rules for every source of `art`; returns the object paths.
    `built` maps (source, flags) to an object already given a rule, which
    is reused rather than compiled twice."""
    objs = []
    built = {} if built is None else built
    for g in art["sources"]:
        fl = cflags(art, g["flags"], extra)
        for f in g["files"]:
            if f in skip:
                continue
            rel = f.lstrip("/").replace("..", "_")
            obj = f"obj/{variant}/{art['name']}/{rel}.o"
            src = os.path.join(ROOT, f)
            extra_fl = [x for pre, xs in EXCEPTIONS if f.startswith(pre) for x in xs]
            ffl = fl + "".join(" " + esc(x) for x in extra_fl)
            if (f, ffl) in built:
                objs.append(built[(f, ffl)])
                continue
            built[(f, ffl)] = obj
            w.append(f"build {path_esc(obj)}: cc {path_esc(src)}\n  flags = {ffl}\n")
            objs.append(obj)
    return objs


def main():
    manifest, outdir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    root = pathlib.Path(ROOT)
    arts = json.loads(manifest.read_text())["artifacts"]
    exe = next(a for a in arts if a["kind"] == "executable")
    unit = next(a for a in arts if a["kind"] == "test")
    libs = [a for a in arts if a["kind"] == "library"]

    w = [f"rule cc\n  command = {CC} -MMD -MF $out.d $flags -c $in -o $out\n  depfile = $out.d\n  deps = gcc\n  description = CC $in\n",
         f"rule ar\n  command = rm -f $out && {AR} crs $out $in\n  description = AR $out\n",
         f"rule link\n  command = {CC} {' '.join(SAN)} $ldflags -o $out $in -Wl,--start-group $libs -Wl,--end-group -lm\n  description = LINK $out\n"]

    lib_paths = []
    for lib in libs:
        objs = objects(w, lib, "asan", [])
        path = f"lib/lib{lib['name']}.a"
        w.append(f"build {path}: ar {' '.join(map(path_esc, objs))}\n")
        lib_paths.append(path)
    libs_var = " ".join(lib_paths)

    built = {}
    for art in (exe, unit):
        objs = objects(w, art, "asan", [], built=built)
        w.append(f"build {art['name']}: link {' '.join(map(path_esc, objs))} | {libs_var}\n  libs = {libs_var}\n")

    # The fuzz build: ccr's code (minus main()) with coverage, as an archive
    # so that each target pulls in only what it uses; the two parsers it
    # hands untrusted bytes to most (cJSON, http-parser) get coverage too,
    # so the fuzzer can learn their grammar.  The other libraries are
    # linked as in build/asan/ccr.
    main_c = [f for g in exe["sources"] for f in g["files"] if f.endswith("src/main.c")]
    fuzz_objs = objects(w, exe, "fuzz", FUZZ, skip=set(main_c))
    w.append(f"build lib/libccr-fuzz.a: ar {' '.join(map(path_esc, fuzz_objs))}\n")
    fuzz_libs = []
    for lib in libs:
        if lib["name"] in FUZZ_COVERED_LIBS:
            objs = objects(w, lib, "fuzz", FUZZ)
            path = f"lib/lib{lib['name']}-fuzz.a"
            w.append(f"build {path}: ar {' '.join(map(path_esc, objs))}\n")
            fuzz_libs.append(path)
        else:
            fuzz_libs.append(f"lib/lib{lib['name']}.a")
    libs_var = " ".join(fuzz_libs)
    targets = sorted((root / "tests" / "fuzz").glob("*.c"))
    fuzz_cflags = cflags(exe, exe["sources"][0]["flags"], FUZZ + ["-I" + str(root / "tests" / "fuzz")])
    fuzz_bins = []
    for t in targets:
        obj = f"obj/fuzz/targets/{t.stem}.o"
        w.append(f"build {obj}: cc {path_esc(str(t))}\n  flags = {fuzz_cflags}\n")
        w.append(f"build fuzz/{t.stem}: link {obj} | lib/libccr-fuzz.a {libs_var}\n"
                 f"  ldflags = -fsanitize=fuzzer\n  libs = lib/libccr-fuzz.a {libs_var}\n")
        fuzz_bins.append(f"fuzz/{t.stem}")
    w.append(f"build fuzzers: phony {' '.join(fuzz_bins)}\n")
    w.append("default ccr ccr-unit\n")

    outdir.mkdir(parents=True, exist_ok=True)
    new = "".join(w)
    target = outdir / "build.ninja"
    if not target.exists() or target.read_text() != new:
        target.write_text(new)


if __name__ == "__main__":
    main()
