#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

/* System calls on buffers right after MPI calls: write(2) of a just-received
 * buffer to a file and to a pipe, send(2) of it on a socketpair, read(2) from a
 * file / pipe and recv(2) from a socket into a just-sent buffer (the receiver
 * must get the old content), write(2) of a just-sent buffer, and read(2) into a
 * just-received buffer (the read data must win). Helper threads drain/feed pipes
 * and sockets so that any size works. */
typedef struct {
  int fd;
  unsigned char* buf;
  size_t n;
  int sock; /* use send/recv instead of write/read */
  int err;
} io_job_t;

/* Writes/reads all n bytes on the calling thread; returns 0 or an errno. */
static int write_all(int fd, const unsigned char* b, size_t n, int sock) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = sock ? send(fd, b + put, n - put, MSG_NOSIGNAL) : write(fd, b + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? errno : EIO;
    put += (size_t)r;
  }
  return 0;
}
static int read_all(int fd, unsigned char* b, size_t n, int sock) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = sock ? recv(fd, b + got, n - got, MSG_WAITALL) : read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? errno : EIO;
    got += (size_t)r;
  }
  return 0;
}
/* The same on a helper thread (pthread_create), the result in the job's err. */
static void* io_reader(void* arg) {
  io_job_t* j = arg;
  j->err = read_all(j->fd, j->buf, j->n, j->sock);
  return NULL;
}
static void* io_writer(void* arg) {
  io_job_t* j = arg;
  j->err = write_all(j->fd, j->buf, j->n, j->sock);
  return NULL;
}

static int temp_file(void) {
  const char* dir = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/stress-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0) fatalf("mkstemp(%s): %s", path, strerror(errno));
  unlink(path);
  return fd;
}

void case_syscalls(void) {
  rng_t r = rng_for(11);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {5000, 65536 + 3, 300000, (1 << 20) + 1};
  const int ns = (int)(sizeof sizes / sizeof sizes[0]);
  size_t maxs = (1 << 20) + 1;
  unsigned char* buf = xmalloc(maxs + 16);
  unsigned char* other = xmalloc(maxs + 16);
  int fd = temp_file();
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < ns; k++) {
      size_t size = sizes[k];
      size_t off = (size_t)k * 3; /* odd offsets too */
      unsigned char* s = buf + off;
      char what[160];
      uint64_t km[8];
      for (int m = 0; m < 8; m++) km[m] = key4(11, (uint64_t)p, (uint64_t)k, (uint64_t)m);
      uint64_t kfile = key4(11, (uint64_t)p, (uint64_t)k, 100);
      if (g_rank == b) {
        /* 1: write(2) a just-received buffer to a file */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: write(2) to a file right after MPI_Recv", a, b, size);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 1, g_comm, MPI_STATUS_IGNORE);
        if (lseek(fd, 0, SEEK_SET) != 0 || ftruncate(fd, 0) != 0) fatalf("lseek/ftruncate: %s", strerror(errno));
        int e = write_all(fd, s, size, 0);
        if (e) errorf("%s: write failed: %s", what, strerror(e));
        if (pread(fd, other, size, 0) != (ssize_t)size) errorf("%s: pread back failed", what);
        pat_check(other, size, km[1], 0, "%s: file content", what);
        pat_check(s, size, km[1], 0, "%s: buffer", what);
        /* 2: write(2) a just-received buffer to a pipe (reader thread drains it) */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: write(2) to a pipe right after MPI_Recv", a, b, size);
        int pf[2];
        if (pipe(pf) != 0) fatalf("pipe: %s", strerror(errno));
        io_job_t job = {pf[0], other, size, 0, 0};
        pthread_t th;
        memset(other, 0, size);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 2, g_comm, MPI_STATUS_IGNORE);
        pthread_create(&th, NULL, io_reader, &job);
        e = write_all(pf[1], s, size, 0);
        if (e) errorf("%s: write failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        if (job.err) errorf("%s: reader failed: %d", what, job.err);
        pat_check(other, size, km[2], 0, "%s: data read from the pipe", what);
        close(pf[0]);
        close(pf[1]);
        /* 3: send(2) a just-received buffer on a socketpair */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: send(2) on a socketpair right after MPI_Recv", a, b, size);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) fatalf("socketpair: %s", strerror(errno));
        io_job_t sj = {sv[1], other, size, 1, 0};
        memset(other, 0, size);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 3, g_comm, MPI_STATUS_IGNORE);
        pthread_create(&th, NULL, io_reader, &sj);
        e = write_all(sv[0], s, size, 1);
        if (e) errorf("%s: send failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        if (sj.err) errorf("%s: reader failed: %d", what, sj.err);
        pat_check(other, size, km[3], 0, "%s: data received from the socket", what);
        /* 4: read(2) from a file INTO a just-received buffer: the file data must win */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: read(2) into the buffer right after MPI_Recv", a, b, size);
        pat_fill(other, size, kfile, 0);
        if (pwrite(fd, other, size, 0) != (ssize_t)size) fatalf("pwrite: %s", strerror(errno));
        MPI_Recv(s, (int)size, MPI_BYTE, a, 4, g_comm, MPI_STATUS_IGNORE);
        if (lseek(fd, 0, SEEK_SET) != 0) fatalf("lseek: %s", strerror(errno));
        e = read_all(fd, s, size, 0);
        if (e) errorf("%s: read failed: %s", what, strerror(e));
        pat_check(s, size, kfile, 0, "%s: buffer must hold the file data", what);
        /* 5: recv(2) from a socket into a just-received buffer (data already queued by a writer) */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: recv(2) into the buffer right after MPI_Recv", a, b, size);
        pat_fill(other, size, kfile ^ 1, 0);
        io_job_t wj = {sv[1], other, size, 1, 0};
        pthread_create(&th, NULL, io_writer, &wj);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 5, g_comm, MPI_STATUS_IGNORE);
        e = read_all(sv[0], s, size, 1);
        if (e) errorf("%s: recv failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        pat_check(s, size, kfile ^ 1, 0, "%s: buffer must hold the socket data", what);
        close(sv[0]);
        close(sv[1]);
        /* 6, 7: the sender's checks; just receive */
        for (int m = 6; m <= 7; m++) {
          snprintf(what, sizeof what, "pair %d->%d %zu bytes: message %d (sender did I/O on its buffer)", a, b, size, m);
          recv_check(other, size + 16, a, m, size, km[m], what);
        }
        /* after 8: the sender's buffer was read by read(2) from a pipe */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: message 8 (sender read(2) a pipe into it)", a, b, size);
        recv_check(other, size + 16, a, 8, size, km[0], what);
      } else if (g_rank == a) {
        for (int m = 1; m <= 5; m++) {
          pat_fill(s, size, km[m], 0);
          MPI_Send(s, (int)size, MPI_BYTE, b, m, g_comm);
        }
        /* 6: read(2) from a file into the just-sent buffer */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: read(2) from a file into the buffer right after MPI_Send",
                 a, b, size);
        pat_fill(other, size, kfile ^ 2, 0);
        if (pwrite(fd, other, size, 0) != (ssize_t)size) fatalf("pwrite: %s", strerror(errno));
        pat_fill(s, size, km[6], 0);
        MPI_Send(s, (int)size, MPI_BYTE, b, 6, g_comm);
        if (lseek(fd, 0, SEEK_SET) != 0) fatalf("lseek: %s", strerror(errno));
        int e = read_all(fd, s, size, 0);
        if (e) errorf("%s: read failed: %s", what, strerror(e));
        pat_check(s, size, kfile ^ 2, 0, "%s: buffer must hold the file data", what);
        /* 7: recv(2) from a socket into the just-sent buffer; then write(2) the just-sent buffer to a file */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: recv(2) into the buffer right after MPI_Send", a, b, size);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) fatalf("socketpair: %s", strerror(errno));
        pat_fill(other, size, kfile ^ 3, 0);
        io_job_t wj = {sv[1], other, size, 1, 0};
        pthread_t th;
        pthread_create(&th, NULL, io_writer, &wj);
        pat_fill(s, size, km[7], 0);
        MPI_Send(s, (int)size, MPI_BYTE, b, 7, g_comm);
        e = read_all(sv[0], s, size, 1);
        if (e) errorf("%s: recv failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        pat_check(s, size, kfile ^ 3, 0, "%s: buffer must hold the socket data", what);
        close(sv[0]);
        close(sv[1]);
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: write(2) of the buffer right after MPI_Send", a, b, size);
        pat_fill(s, size, km[0], 0);
        MPI_Send(s, (int)size, MPI_BYTE, b, 8, g_comm);
        if (lseek(fd, 0, SEEK_SET) != 0 || ftruncate(fd, 0) != 0) fatalf("lseek/ftruncate: %s", strerror(errno));
        e = write_all(fd, s, size, 0);
        if (e) errorf("%s: write failed: %s", what, strerror(e));
        memset(other, 0, size);
        if (pread(fd, other, size, 0) != (ssize_t)size) errorf("%s: pread back failed", what);
        pat_check(other, size, km[0], 0, "%s: file content", what);
        /* read(2) from a pipe into the just-sent buffer (a writer thread feeds the pipe) */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: read(2) from a pipe into the buffer right after MPI_Send",
                 a, b, size);
        int pf[2];
        if (pipe(pf) != 0) fatalf("pipe: %s", strerror(errno));
        pat_fill(other, size, kfile ^ 4, 0);
        io_job_t pj = {pf[1], other, size, 0, 0};
        pthread_create(&th, NULL, io_writer, &pj);
        e = read_all(pf[0], s, size, 0);
        if (e) errorf("%s: read failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        pat_check(s, size, kfile ^ 4, 0, "%s: buffer must hold the pipe data", what);
        close(pf[0]);
        close(pf[1]);
      }
    }
  }
  close(fd);
  free(buf);
  free(other);
  free(pairs);
}
