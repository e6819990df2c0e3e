/* The floor under a probe's CPU (issue 23): what the bare kernel costs the prober for the same
 * probes healthther sends, with nothing of healthther's own. One process, one epoll, as an event
 * loop does it: each second, every address is probed once, all at once.
 *
 *   client http SECONDS PORT IP...   connect, `GET`, read the status, close (as healthther)
 *   client tcp SECONDS PORT IP...    connect, close (as healthther)
 *   client keepalive SECONDS PORT IP...
 *                                    one connection per address kept open, a `GET` on it each
 *                                    second (what HTTP keep-alive would cost at best)
 *
 * Prints one line: "MODE PROBES FAILED US_CPU_PER_PROBE", CPU from getrusage (user + system). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOST 1024
enum { CONNECTING, ASKED, DONE };

static double cpu(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
         r.ru_stime.tv_usec / 1e6;
}

static struct sockaddr_in address(const char *ip, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "client: %s is no IPv4 address\n", ip);
    exit(2);
  }
  return a;
}

static int ask(int fd, const char *ip, int port, int keep) {
  char req[256];
  int len = snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nhost: %s:%d\r\n%suser-agent: "
                     "healthther\r\n\r\n", ip, port, keep ? "" : "connection: close\r\n");
  return write(fd, req, len) == len;
}

static int healthy(int fd) {
  char buf[1024];
  ssize_t got = read(fd, buf, sizeof buf);
  return got >= 12 && memcmp(buf, "HTTP/1.1 2", 10) == 0;
}

int main(int argc, char **argv) {
  if (argc < 5 || argc - 4 > MOST) {
    fprintf(stderr, "usage: client http|tcp|keepalive SECONDS PORT IP...\n");
    return 2;
  }
  const char *mode = argv[1];
  int http = !strcmp(mode, "http"), keep = !strcmp(mode, "keepalive");
  int seconds = atoi(argv[2]), port = atoi(argv[3]), n = argc - 4;
  static int fds[MOST], state[MOST];
  long probes = 0, failed = 0;
  int ep = epoll_create1(0);
  if (keep)
    for (int i = 0; i < n; i++) {
      struct sockaddr_in a = address(argv[4 + i], port);
      fds[i] = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(fds[i], (void *)&a, sizeof a)) {
        fprintf(stderr, "client: cannot connect to %s: %s\n", argv[4 + i], strerror(errno));
        return 1;
      }
      struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
      epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
  double start = cpu();
  struct timespec tick;
  clock_gettime(CLOCK_MONOTONIC, &tick);
  for (int s = 0; s < seconds; s++) {
    int left = n;
    for (int i = 0; i < n; i++) {
      if (keep) {
        state[i] = ASKED;
        if (!ask(fds[i], argv[4 + i], port, 1)) failed++, left--, state[i] = DONE;
        continue;
      }
      struct sockaddr_in a = address(argv[4 + i], port);
      fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      state[i] = CONNECTING;
      if (connect(fds[i], (void *)&a, sizeof a) && errno != EINPROGRESS) {
        close(fds[i]), failed++, left--, state[i] = DONE;
        continue;
      }
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = i};
      epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    while (left > 0) {
      struct epoll_event evs[64];
      int ready = epoll_wait(ep, evs, 64, 3000);
      if (ready <= 0) break; /* what is left counts as failed below */
      for (int j = 0; j < ready; j++) {
        int i = evs[j].data.u32, fd = fds[i];
        if (state[i] == DONE) continue;
        if (state[i] == CONNECTING) {
          int err = 0;
          socklen_t len = sizeof err;
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err || !http) {
            failed += err != 0, probes += err == 0;
            close(fd), left--, state[i] = DONE;
            continue;
          }
          if (!ask(fd, argv[4 + i], port, 0)) {
            close(fd), failed++, left--, state[i] = DONE;
            continue;
          }
          state[i] = ASKED;
          continue; /* edge-triggered: the answer comes as another event */
        }
        if (!(evs[j].events & EPOLLIN)) continue;
        if (healthy(fd)) probes++;
        else failed++;
        if (!keep) close(fd);
        left--, state[i] = DONE;
      }
    }
    failed += left;
    tick.tv_sec++;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
  }
  double used = cpu() - start;
  printf("%s %ld %ld %.1f\n", mode, probes, failed, probes ? used / probes * 1e6 : 0.0);
  return 0;
}
