exec(open('cover.py').read().split("S={}")[0])
from collections import Counter
sc=[(len(cover(s))/len(s),i) for i,s in enumerate(va)]
sc.sort(reverse=True)
for s,i in sc[:40]:
    seq=va[i]; c=Counter(seq).most_common(6)
    print(f"{s:.3f} len {len(seq)} segs {cover(seq)[:25]} top {c}")
