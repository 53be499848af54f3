// Load generator for scripts/bench-agent.sh: keeps COUNT live, idle processes.
//
// Usage: idle_procs COUNT
// Forks COUNT children; each execs `sleep 100000` (so the agent sees fork + exec, as for real
// programs), with PR_SET_PDEATHSIG = SIGKILL so that none outlives this process even if it is
// killed with SIGKILL. Prints "ready COUNT" on stdout once all are forked, then waits. On SIGTERM,
// SIGINT or SIGHUP it kills every child, reaps them all and exits 0.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2 || atoi(argv[1]) <= 0) {
    fprintf(stderr, "usage: %s COUNT\n", argv[0]);
    return 2;
  }
  const int count = atoi(argv[1]);
  pid_t* kids = calloc((size_t)count, sizeof(pid_t));
  if (kids == NULL) return 1;

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);  // taken synchronously by sigwait below

  const pid_t parent = getpid();
  int started = 0;
  for (; started < count; ++started) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "idle_procs: fork %d: %s\n", started, strerror(errno));
      break;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);  // parent already gone
      sigprocmask(SIG_UNBLOCK, &set, NULL);
      execlp("sleep", "sleep", "100000", (char*)NULL);
      _exit(127);
    }
    kids[started] = pid;
  }
  printf("ready %d\n", started);
  fflush(stdout);

  int sig = 0;
  if (started == count) sigwait(&set, &sig);
  for (int i = 0; i < started; ++i) kill(kids[i], SIGKILL);
  for (int i = 0; i < started; ++i) waitpid(kids[i], NULL, 0);
  free(kids);
  return started == count ? 0 : 1;
}
