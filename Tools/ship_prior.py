#!/usr/bin/env python3
"""Ships a prior written by `guise train-prior`: copies its EMA weights to Models/prior/ and writes
their manifest entry (source "project", the recipe, size, sha256) into Models/manifest.json.

    python3 Tools/ship_prior.py PRIOR.safetensors "guise train-prior --data ... --steps ..."
"""
import hashlib, json, os, shutil, struct, sys

NAME = "prior/guise-prior.safetensors"
MAX_BYTES = 20 * 1024 * 1024


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    src, command = argv[1], argv[2]
    meta = metadata(src)
    if "adm_config" not in meta:
        sys.exit(f"ship_prior: {src} has no adm_config metadata; not a train-prior output")
    size = os.path.getsize(src)
    if size > MAX_BYTES:
        sys.exit(f"ship_prior: {src} is {size} bytes, over the 20 MB budget")
    dest = os.path.join("Models", NAME)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(src, dest + ".partial")
    os.replace(dest + ".partial", dest)
    with open(dest, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    entry = {
        "name": NAME,
        "role": "diffusion prior (Guise's own ADM, 3.1M parameters, cosine schedule, EMA weights fp16)",
        "source": "project",
        "path": NAME,
        "size": size,
        "sha256": digest,
        "licence": "trained here; data licences in Models/prior/README.md",
        "recipe": {
            "command": command,
            "data_manifest": "Models/prior/data-manifest.json",
            "seed": int(meta["seed"]),
            "steps": int(meta["step"]),
            "final_loss": float(meta.get("final_loss", "nan")),
        },
    }
    with open("Models/manifest.json") as f:
        manifest = json.load(f)
    manifest["files"] = [e for e in manifest["files"] if e["name"] != NAME] + [entry]
    tmp = "Models/manifest.json.partial"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, "Models/manifest.json")
    print(f"ship_prior: {dest} ({size} bytes, sha256 {digest[:12]}…), manifest entry written")


if __name__ == "__main__":
    main(sys.argv)
