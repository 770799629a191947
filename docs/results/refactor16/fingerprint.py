"""Every job in a store: sha256 of each tensor file's tensors, and the summary without paths and times."""
import hashlib, json, sys
from pathlib import Path
import torch
store = Path(sys.argv[1])
out = {}
SKIP = {"path", "wall_seconds", "compile_seconds"}
for summary in sorted(store.rglob("summary.json")):
    job = summary.parent
    rel = str(job.relative_to(store))
    s = json.loads(summary.read_text())
    entry = {"summary": {k: v for k, v in s.items() if k not in SKIP}}
    for f in sorted(job.glob("*.pt")):
        state = torch.load(f, map_location="cpu", weights_only=False)
        h = hashlib.sha256()
        for k in sorted(state):
            h.update(k.encode()); h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
        entry[f.name] = h.hexdigest()[:16]
    entry["mask.npz"] = hashlib.sha256((job / "mask.npz").read_bytes()).hexdigest()[:16] if (job / "mask.npz").exists() else None
    m = [json.loads(l) for l in (job / "metrics.jsonl").read_text().splitlines()]
    entry["metrics"] = hashlib.sha256(json.dumps([r for r in m if r["name"] != "time/wall_seconds"]).encode()).hexdigest()[:16]
    out[rel] = entry
json.dump(out, sys.stdout, indent=1, sort_keys=True)
