import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
bad = 0
for k in sorted(set(a) | set(b)):
    if a.get(k) != b.get(k):
        bad += 1
        print("DIFF", k)
        if k in a and k in b:
            for f in sorted(set(a[k]) | set(b[k])):
                if a[k].get(f) != b[k].get(f):
                    print("   ", f, str(a[k].get(f))[:300], "|", str(b[k].get(f))[:300])
print(f"{len(a)} vs {len(b)} jobs, {bad} differ")
sys.exit(1 if bad else 0)
