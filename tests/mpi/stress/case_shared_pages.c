#include "stress.h"

/* Messages in the middle of a page-spanning array, sharing pages with live data:
 * two adjacent messages A and B (B starts where A ends or a few bytes later) with
 * neighbours before A and after B, and counters at the ends of the array.  Right
 * after each call the neighbours (including the other message region) are read
 * and written; nothing outside the message may change and no program write may
 * be lost. */
void case_shared_pages(void) {
  rng_t r = rng_for(5);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  const size_t area_len = 12 * g_page;
  unsigned char* area = xalloc_pages(area_len);
  volatile uint64_t* head = (volatile uint64_t*)area;                              /* first 64 bytes */
  volatile uint64_t* tail = (volatile uint64_t*)(area + area_len - 64);            /* last 64 bytes */
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < 8; k++) {
      size_t la, lb, gap, start;
      switch (k) {
        case 0: la = 1000, lb = 1000, gap = 0, start = g_page - 500; break;    /* small, straddling */
        case 1: la = 4096, lb = 4097, gap = 0, start = g_page - 100; break;    /* around the threshold */
        case 2: la = 5000, lb = 3 * g_page + 7, gap = 3, start = 700; break;
        case 3: la = 3 * g_page + 7, lb = 4096, gap = 1, start = 2 * g_page + 1; break;
        case 4: la = 2 * g_page, lb = 2 * g_page, gap = 0, start = g_page; break; /* page aligned */
        default:
          la = 4096 + rng_below(&r, 3 * g_page);
          lb = 4096 + rng_below(&r, 3 * g_page);
          gap = rng_below(&r, 3) == 0 ? 0 : rng_below(&r, 200);
          start = 64 + 64 + rng_below(&r, g_page);
          break;
      }
      if (start < 128) start = 128;
      size_t astart = start, bstart = start + la + gap;
      size_t end = bstart + lb;
      if (end + 64 + 64 > area_len) fatalf("shared_pages layout too large");
      size_t n1 = astart - 64; /* neighbour bytes before A: [64 .. astart) minus head */
      uint64_t ka = key4(7, (uint64_t)p, (uint64_t)k, 1), kb = key4(7, (uint64_t)p, (uint64_t)k, 2);
      uint64_t kbg = key4(7, (uint64_t)p, (uint64_t)k, 3), knew = key4(7, (uint64_t)p, (uint64_t)k, 4);
      char what[200];
      snprintf(what, sizeof what, "pair %d->%d layout %d (A=[%zu,+%zu) B=[%zu,+%zu) in a %zu-byte page-spanning array)",
               a, b, k, astart, la, bstart, lb, area_len);
      if (g_rank == a) {
        pat_fill(area, area_len, kbg, 0);
        pat_fill(area + astart, la, ka, 0);
        MPI_Send(area + astart, (int)la, MPI_BYTE, b, 1, g_comm);
        /* right away: write B's content (same page as A), the neighbour before A and the counters */
        pat_fill(area + bstart, lb, kb, 0);
        head[0]++;
        tail[0]++;
        pat_fill(area + 64, n1, knew, 0);
        MPI_Send(area + bstart, (int)lb, MPI_BYTE, b, 2, g_comm);
        /* right away: trash A and the gap, touch after-B */
        memset(area + astart, 0x11, la + gap);
        pat_fill(area + end, area_len - 64 - end, knew, end);
        head[1] = head[0] + 5;
        tail[1] = tail[0] + 7;
        pat_check(area + 64, n1, knew, 0, "%s: sender's neighbour before A", what);
        byte_check(area + astart, la + gap, 0x11, "shared_pages: sender's overwrite of A");
        pat_check(area + bstart, lb, kb, 0, "%s: sender's B region", what);
        pat_check(area + end, area_len - 64 - end, knew, end, "%s: sender's neighbour after B", what);
        if (head[1] != head[0] + 5 || tail[1] != tail[0] + 7) errorf("%s: sender's counters corrupted", what);
      } else if (g_rank == b) {
        pat_fill(area, area_len, kbg, 0);
        uint64_t h0 = head[0], t0 = tail[0];
        MPI_Recv(area + astart, (int)la, MPI_BYTE, a, 1, g_comm, MPI_STATUS_IGNORE);
        /* right away: write the neighbour before A and the counters, read after-B */
        pat_fill(area + 64, n1, knew, 0);
        head[0] = h0 + 1;
        tail[0] = t0 + 1;
        pat_check(area + end, area_len - 64 - end, kbg, end, "%s: bytes after B right after receiving A", what);
        pat_check(area + bstart, lb, kbg, bstart, "%s: B region right after receiving A (before B)", what);
        MPI_Recv(area + bstart, (int)lb, MPI_BYTE, a, 2, g_comm, MPI_STATUS_IGNORE);
        /* right away: write after-B and the gap, then check everything */
        pat_fill(area + end, area_len - 64 - end, knew, end);
        if (gap) memset(area + astart + la, 0x77, gap);
        head[1] = h0 + 42;
        tail[1] = t0 + 43;
        pat_check(area + astart, la, ka, 0, "%s: message A", what);
        pat_check(area + bstart, lb, kb, 0, "%s: message B", what);
        pat_check(area + 64, n1, knew, 0, "%s: neighbour before A (written after receiving A)", what);
        pat_check(area + end, area_len - 64 - end, knew, end, "%s: neighbour after B", what);
        if (gap) byte_check(area + astart + la, gap, 0x77, "shared_pages: gap between A and B");
        if (head[0] != h0 + 1 || tail[0] != t0 + 1 || head[1] != h0 + 42 || tail[1] != t0 + 43)
          errorf("%s: counters at the array ends corrupted", what);
        pat_check((const void*)(head + 2), 48, kbg, 16, "%s: untouched head bytes", what);
      }
    }
  }
  /* An array of structs: each message is one struct's payload, the id/flag fields
   * of the same and the neighbouring structs are updated right after each call. */
  struct rec {
    int id;
    double vals[700]; /* 5600 bytes: crosses a page */
    int flag;
  };
  enum { NREC = 6 };
  struct rec* recs = xmalloc(sizeof(struct rec) * NREC);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    uint64_t key = key4(8, (uint64_t)p, 0, 0);
    if (g_rank == a) {
      for (int i = 0; i < NREC; i++) {
        recs[i].id = i;
        recs[i].flag = -i;
        pat_fill(recs[i].vals, sizeof recs[i].vals, key, (size_t)i * 8192);
      }
      for (int i = 0; i < NREC; i++) {
        MPI_Send(recs[i].vals, 700, MPI_DOUBLE, b, 100 + i, g_comm);
        recs[i].id += 1000;
        recs[i].flag += 1000;
        if (i + 1 < NREC) recs[i + 1].id += 1;
        memset(recs[i].vals, 0, sizeof recs[i].vals);
      }
      for (int i = 0; i < NREC; i++)
        if (recs[i].id != i + 1000 + (i > 0) || recs[i].flag != -i + 1000)
          errorf("struct array pair %d->%d: sender's struct %d fields corrupted (id=%d flag=%d)", a, b, i, recs[i].id,
                 recs[i].flag);
    } else if (g_rank == b) {
      for (int i = 0; i < NREC; i++) {
        recs[i].id = i;
        recs[i].flag = -i;
        memset(recs[i].vals, 0xab, sizeof recs[i].vals);
      }
      for (int i = 0; i < NREC; i++) {
        MPI_Recv(recs[i].vals, 700, MPI_DOUBLE, a, 100 + i, g_comm, MPI_STATUS_IGNORE);
        recs[i].id += 2000;
        recs[i].flag += 2000;
        if (i + 1 < NREC) recs[i + 1].id += 1;
      }
      for (int i = 0; i < NREC; i++) {
        if (recs[i].id != i + 2000 + (i > 0) || recs[i].flag != -i + 2000)
          errorf("struct array pair %d->%d: receiver's struct %d fields corrupted (id=%d flag=%d)", a, b, i,
                 recs[i].id, recs[i].flag);
        pat_check(recs[i].vals, sizeof recs[i].vals, key, (size_t)i * 8192, "struct array pair %d->%d: struct %d vals",
                  a, b, i);
      }
    }
  }
  free(recs);
  xfree_pages(area, area_len);
  free(pairs);
}
