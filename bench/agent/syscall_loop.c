// Load generator for scripts/bench-agent.sh: a tight system-call loop that times itself.
//
// Usage: syscall_loop openclose|getppid COUNT [FILE]
//   openclose: COUNT pairs of open(FILE, O_RDONLY) + close (FILE default: a temp file it creates
//              and removes); getppid: COUNT getppid() calls (the cheapest system call).
// Prints one line on stdout: "<mode> <count> <total_ns> <ns_per_iteration> <cpu_ns_per_iteration>".
// ns_per_iteration is CLOCK_MONOTONIC (wall) around the loop only (file creation excluded);
// cpu_ns_per_iteration is this process's CPU time (CLOCK_PROCESS_CPUTIME_ID, user + kernel) over
// the same loop: it includes what tracing programs cost in this process's context but not the
// time spent waiting for a core, so it separates kernel-side cost from contention with the agent
// and other load. Exit 1 on any error.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long ClockNs(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static long long NowNs(void) { return ClockNs(CLOCK_MONOTONIC); }
static long long CpuNs(void) { return ClockNs(CLOCK_PROCESS_CPUTIME_ID); }

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s openclose|getppid COUNT [FILE]\n", argv[0]);
    return 2;
  }
  const char* mode = argv[1];
  const long long count = atoll(argv[2]);
  if (count <= 0) {
    fprintf(stderr, "syscall_loop: COUNT must be positive, got '%s'\n", argv[2]);
    return 2;
  }
  char path[64] = {0};
  const char* file = argc > 3 ? argv[3] : NULL;
  int created = 0;
  if (strcmp(mode, "openclose") == 0 && file == NULL) {
    snprintf(path, sizeof path, "/tmp/vigil-bench-loop.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
      fprintf(stderr, "syscall_loop: mkstemp: %s\n", strerror(errno));
      return 1;
    }
    close(fd);
    file = path;
    created = 1;
  }

  long long start = 0, end = 0, cpu_start = 0, cpu_end = 0;
  if (strcmp(mode, "openclose") == 0) {
    cpu_start = CpuNs();
    start = NowNs();
    for (long long i = 0; i < count; ++i) {
      int fd = open(file, O_RDONLY);
      if (fd < 0) {
        fprintf(stderr, "syscall_loop: open %s: %s\n", file, strerror(errno));
        if (created) unlink(path);
        return 1;
      }
      close(fd);
    }
    end = NowNs();
    cpu_end = CpuNs();
  } else if (strcmp(mode, "getppid") == 0) {
    cpu_start = CpuNs();
    start = NowNs();
    // syscall() rather than getppid(): no libc caching can skip the kernel entry.
    for (long long i = 0; i < count; ++i) syscall(SYS_getppid);
    end = NowNs();
    cpu_end = CpuNs();
  } else {
    fprintf(stderr, "syscall_loop: unknown mode '%s' (openclose|getppid)\n", mode);
    return 2;
  }
  if (created) unlink(path);
  const long long total = end - start;
  printf("%s %lld %lld %.1f %.1f\n", mode, count, total, (double)total / (double)count,
         (double)(cpu_end - cpu_start) / (double)count);
  return 0;
}
