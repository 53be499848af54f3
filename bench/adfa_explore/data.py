"""Shared helpers of the ADFA-LD exploration scripts: the development split, ROC AUC and the
detection rate at a false-alarm rate (as vigil eval computes them), i386 call names."""
import os, glob, re
HERE = os.path.dirname(os.path.abspath(__file__))
D = os.environ.get('VIGIL_DATA', os.path.join(HERE, '..', '..', '..', 'shared', 'data', 'adfa-ld'))
def names():
    """i386 number -> name, from Vigil's own table."""
    src = open(os.path.join(HERE, '..', '..', 'src', 'core', 'syscall_tables.inc')).read()
    seg = src[:src.find('kX86_64Table')]
    return {int(a): b for a, b in re.findall(r'\{\s*(\d+)\s*,\s*"(\w+)"\s*\}', seg)}
def load(p):
    with open(p) as f: return [int(x) for x in f.read().split()]
def train(): return [load(p) for p in sorted(glob.glob(D+'/Training_Data_Master/*.txt'))]
def val(): return [load(p) for p in sorted(glob.glob(D+'/Validation_Data_Master/*.txt'))]
def attack():
    out=[]
    for d in sorted(os.listdir(D+'/Attack_Data_Master')):
        typ=d.rsplit('_',1)[0]
        for p in sorted(glob.glob(D+'/Attack_Data_Master/'+d+'/*.txt')):
            out.append((typ,d,load(p)))
    return out
def auc(neg,pos):
    allv=sorted([(s,0) for s in neg]+[(s,1) for s in pos])
    # rank-based AUC with ties
    ranks={};i=0;n=len(allv);r=[0]*n
    while i<n:
        j=i
        while j<n and allv[j][0]==allv[i][0]: j+=1
        for k in range(i,j): r[k]=(i+j+1)/2
        i=j
    sp=sum(r[k] for k in range(n) if allv[k][1]==1)
    P=len(pos);N=len(neg)
    return (sp-P*(P+1)/2)/(P*N)
def tpr_at(neg,pos,fpr):
    s=sorted(neg,reverse=True)
    k=int(fpr*len(neg))  # threshold: the k-th highest normal; allow k false alarms
    thr=s[k] if k<len(s) else s[-1]
    return sum(1 for x in pos if x>thr)/len(pos)
def report(name,neg,pos):
    print(f"{name}: AUC {auc(neg,pos):.4f} TPR@5 {100*tpr_at(neg,pos,0.05):.1f} TPR@1 {100*tpr_at(neg,pos,0.01):.1f}",flush=True)
def vocabulary(traces):
    """Call number -> token 1..V in order of first appearance (0 = unknown), as vigil does."""
    vocab = {}
    for t in traces:
        for c in t: vocab.setdefault(c, len(vocab) + 1)
    return vocab
def tokenizer(vocab):
    return lambda s: [vocab.get(c, 0) for c in s]
def mean(x): return sum(x) / len(x)
def split():
    """training, validation, attack (type, run, trace) and the attack traces alone"""
    at = attack()
    return train(), val(), at, [a[2] for a in at]
