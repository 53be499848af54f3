exec(open('cover.py').read().split("S={}")[0])
from collections import Counter
def full(seq): return len(cover(seq))
va_s=[len(cover(s)) for s in va]; at_s=[len(cover(a[2])) for a in at]
print('val traces covered by 1 segment', sum(1 for x in va_s if x==1), len(va))
print('att traces covered by 1 segment', sum(1 for x in at_s if x==1), len(at))
print('val <=3 segs', sum(1 for x in va_s if x<=3), 'att', sum(1 for x in at_s if x<=3))
# duplicates of attack traces in val/training exactly
trs=set(tuple(t) for t in tr); vas=set(tuple(t) for t in va)
print('attack exact in train',sum(1 for a in at if tuple(a[2]) in trs),'in val',sum(1 for a in at if tuple(a[2]) in vas))
print('val exact in train',sum(1 for v in va if tuple(v) in trs))
sc=sorted(((at_s[i]/len(at[i][2]),i) for i in range(len(at))))
for s,i in sc[:40]:
    seq=at[i][2]
    print(f"{s:.3f} {at[i][1]} len {len(seq)} segs {cover(seq)[:12]} top {Counter(seq).most_common(5)}")
