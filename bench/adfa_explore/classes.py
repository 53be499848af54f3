import data, kn, math, json, pickle
names=data.names()
C={
'io':'read write readv writev pread64 pwrite64 lseek _llseek sendfile sendfile64 fsync fdatasync ftruncate ftruncate64 sync_file_range fallocate fadvise64_64',
'fd':'open openat creat close dup dup2 dup3 pipe pipe2',
'meta':'stat64 fstat64 lstat64 fstatat64 stat fstat lstat access faccessat readlink statfs statfs64 fstatfs64 getdents getdents64 getcwd chdir fchdir umask chmod fchmod chown32 fchown32 lchown32 fchownat utime utimensat unlink unlinkat rename mkdir rmdir link symlink getxattr setxattr fgetxattr fsetxattr lgetxattr flistxattr llistxattr inotify_add_watch inotify_rm_watch inotify_init1',
'ctl':'fcntl64 fcntl ioctl flock',
'mem':'mmap2 mmap munmap mprotect brk mremap madvise msync',
'proc':'clone fork vfork execve exit exit_group waitpid wait4 set_thread_area set_tid_address set_robust_list prctl setsid setpgid getpgrp getpgid ptrace',
'id':'getuid32 geteuid32 getgid32 getegid32 setuid32 setgid32 setreuid32 setregid32 setresuid32 getresuid32 getresgid32 setgroups32 getgroups32 capget capset getpid getppid gettid',
'sig':'rt_sigaction rt_sigprocmask sigreturn rt_sigreturn kill tgkill alarm setitimer rt_sigsuspend rt_sigpending timer_create timer_settime timerfd_create',
'time':'time gettimeofday clock_gettime nanosleep times clock_getres clock_settime getrusage',
'wait':'poll ppoll _newselect pselect6 epoll_ctl epoll_wait epoll_create futex sched_yield',
'net':'socketcall',
}
cls={}
for i,(k,v) in enumerate(C.items()):
    for n in v.split(): cls[n]=i+1
OTHER=len(C)+1
tr,va,at,A=data.split()
def ctok(s): return [cls.get(names.get(c,''),OTHER) for c in s]
mean=data.mean
SV6,SA6=pickle.load(open('surp6.pkl','rb'))
for N in (6,):
    m=kn.KN(N,OTHER+1)
    for t in tr: m.add(ctok(t))
    m.finalize()
    SV=[m.surprisals(ctok(s)) for s in va]; SA=[m.surprisals(ctok(s)) for s in A]
    data.report(f'class order{N} mean',[mean(x) for x in SV],[mean(x) for x in SA])
    data.report(f'raw+class sum',[mean(x)+mean(y) for x,y in zip(SV,SV6)],[mean(x)+mean(y) for x,y in zip(SA,SA6)])
    # per-position min? conditional: P(raw)=P(class)*P(raw|class...) approximated: use min of raw and class surprisal
    data.report(f'mean min(raw,class+?)',[mean([min(a,b) for a,b in zip(x,y)]) for x,y in zip(SV,SV6)],[mean([min(a,b) for a,b in zip(x,y)]) for x,y in zip(SA,SA6)])
    pickle.dump((SV,SA),open('surpc6.pkl','wb'))
