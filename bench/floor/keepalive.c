/* An HTTP server that keeps connections open, for the keep-alive arm of bench/floor.py (the
 * fixture closes every connection): answers each request with `200`, one process, one epoll.
 * Built static with musl-gcc and run FROM scratch. usage: keepalive PORT */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: keepalive PORT\n");
    return 2;
  }
  static const char answer[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
  int one = 1, listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listener, (void *)&a, sizeof a) || listen(listener, 512)) {
    perror("keepalive: cannot listen");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  for (;;) {
    struct epoll_event evs[64];
    int ready = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < ready; i++) {
      int fd = evs[i].data.fd;
      if (fd == listener) {
        int conn = accept(listener, NULL, NULL);
        struct epoll_event e = {.events = EPOLLIN, .data.fd = conn};
        if (conn >= 0) epoll_ctl(ep, EPOLL_CTL_ADD, conn, &e);
        continue;
      }
      char buf[2048];
      if (read(fd, buf, sizeof buf) <= 0 || write(fd, answer, sizeof answer - 1) < 0) close(fd);
    }
  }
}
