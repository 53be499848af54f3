"""The greedy covering of cover.py (the `cover` family) as a module: a suffix automaton over
training traces joined with unique separators, and the segment lengths of a trace covered left
to right by the longest training substring at each position."""
class SAM:
    def __init__(s):
        s.next=[{}]; s.link=[-1]; s.len=[0]; s.last=0
    def extend(s,c):
        cur=len(s.len); s.next.append({}); s.len.append(s.len[s.last]+1); s.link.append(0)
        p=s.last
        while p!=-1 and c not in s.next[p]:
            s.next[p][c]=cur; p=s.link[p]
        if p==-1: s.link[cur]=0
        else:
            q=s.next[p][c]
            if s.len[p]+1==s.len[q]: s.link[cur]=q
            else:
                cl=len(s.len); s.next.append(dict(s.next[q])); s.len.append(s.len[p]+1); s.link.append(s.link[q])
                while p!=-1 and s.next[p].get(c)==q:
                    s.next[p][c]=cl; p=s.link[p]
                s.link[q]=cl; s.link[cur]=cl
        s.last=cur
def automaton(traces):
    """suffix automaton of the traces, each followed by its own separator (-1, -2, ...)"""
    s = SAM(); sep = -1
    for t in traces:
        for c in t: s.extend(c)
        s.extend(sep); sep -= 1
    return s
def segments(s, seq):
    """greedy: from p, the longest match starting at p (at least one call)"""
    n = len(seq); p = 0; out = []
    while p < n:
        st = 0; l = 0
        while p + l < n and seq[p + l] in s.next[st]:
            st = s.next[st][seq[p + l]]; l += 1
        l = max(l, 1); out.append(l); p += l
    return out
