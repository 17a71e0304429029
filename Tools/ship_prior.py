#!/usr/bin/env python3
"""Ships a prior written by `guise train-prior`: copies its EMA weights to Models/prior/ and writes
their manifest entry (source "project", the recipe, size, sha256) into Models/manifest.json.

    python3 Tools/ship_prior.py PRIOR.safetensors "guise train-prior --data ... --steps ..." [NAME]

NAME is the shipped prior's name (guise-prior, guise-prior-2; default guise-prior-2): the file is
Models/prior/NAME.safetensors. Other priors' entries are left as they are.
"""
import hashlib, json, math, os, shutil, struct, sys

NAMES = ("guise-prior", "guise-prior-2")
MAX_BYTES = 20 * 1024 * 1024


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def describe(head):
    """The manifest's role line, from the file's tensors and ADM config."""
    params = sum(math.prod(v["shape"]) for k, v in head.items() if k != "__metadata__")
    cfg = json.loads(head["__metadata__"]["adm_config"])
    mult = [int(m) for m in str(cfg["channel_mult"]).split(",")]
    widths = "/".join(str(m * cfg["num_channels"]) for m in mult)
    attn = cfg.get("attention_resolutions", "")
    rates = sorted(cfg["image_size"] // int(r) for r in str(attn).split(",") if r.strip())
    where = (f"self-attention at {', '.join(f'1/{d}' for d in rates)} resolution and in the middle block" if rates
             else "attention in the middle block only")
    return (f"diffusion prior (Guise's own ADM, {params / 1e6:.1f}M parameters, widths {widths}, {where}, "
            "cosine schedule, EMA weights fp16)")


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    src, command = argv[1], argv[2]
    short = argv[3] if len(argv) == 4 else "guise-prior-2"
    if short not in NAMES:
        sys.exit(f"ship_prior: unknown prior name {short} (expected one of {', '.join(NAMES)})")
    name = f"prior/{short}.safetensors"
    head = header(src)
    meta = head.get("__metadata__", {})
    if "adm_config" not in meta:
        sys.exit(f"ship_prior: {src} has no adm_config metadata; not a train-prior output")
    size = os.path.getsize(src)
    if size > MAX_BYTES:
        sys.exit(f"ship_prior: {src} is {size} bytes, over the 20 MB budget")
    dest = os.path.join("Models", name)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(src, dest + ".partial")
    os.replace(dest + ".partial", dest)
    with open(dest, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    entry = {
        "name": name,
        "role": describe(head),
        "source": "project",
        "path": name,
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
    # The entry keeps its place when it is replaced, so the other entries' order never moves.
    files = manifest["files"]
    at = next((i for i, e in enumerate(files) if e["name"] == name), None)
    if at is None:
        files.append(entry)
    else:
        files[at] = entry
    tmp = "Models/manifest.json.partial"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, "Models/manifest.json")
    print(f"ship_prior: {dest} ({size} bytes, sha256 {digest[:12]}…), manifest entry written")


if __name__ == "__main__":
    main(sys.argv)
