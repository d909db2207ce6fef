/* Frame output queue for the fork-server: one buffer toward the client, written non-blocking
 * from the event loop so a slow client never blocks container I/O or other boots. */
#include "jl-serve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>

static struct jl_buf out;

int jl_buf_append(struct jl_buf *b, const void *p, size_t n) {
  if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
  if (b->len + n > b->cap) {
    if (b->off > 0) {  /* slide the unsent part to the front before growing */
      memmove(b->data, b->data + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void jl_buf_consume(struct jl_buf *b, size_t n) {
  b->off += n;
  if (b->off >= b->len) b->off = b->len = 0;
}

void jl_out_frame(uint8_t type, uint32_t handle, const void *payload, size_t n) {
  uint8_t hdr[JL_FRAME_HDR];
  uint32_t len = (uint32_t)(n + 5);
  memcpy(hdr, &len, 4);          /* little-endian host (x86-64, arm64) */
  hdr[4] = type;
  memcpy(hdr + 5, &handle, 4);
  if (jl_buf_append(&out, hdr, sizeof hdr) < 0 || (n && jl_buf_append(&out, payload, n) < 0)) abort();
}

void jl_out_json(uint8_t type, uint32_t handle, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) abort();
  jl_out_frame(type, handle, s, strlen(s));
  free(s);
}

void jl_out_error(uint32_t handle, const struct jl_err *err) {
  jl_out_json(JL_F_REPLY, handle, json_pack("{s:b, s:s, s:s, s:i}", "ok", 0, "code", err->code ? err->code : "internal",
                                            "message", err->msg, "errno", err->errnum));
}

size_t jl_out_pending(void) { return out.len - out.off; }

size_t jl_out_flush(void) {
  while (out.len > out.off) {
    ssize_t w = write(1, out.data + out.off, out.len - out.off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      out.off = out.len = 0;  /* client gone (EPIPE): the stdin EOF that follows shuts us down */
      break;
    }
    jl_buf_consume(&out, (size_t)w);
  }
  return jl_out_pending();
}

void jl_out_flush_blocking(void) {
  for (int i = 0; i < 2000 && jl_out_flush() > 0; i++) {
    struct pollfd p = {1, POLLOUT, 0};
    poll(&p, 1, 5);
  }
}
