// SPDX-License-Identifier: Apache-2.0
/*
 * A config file kept parsed between loads (config_file.h).
 *
 * The line scan (cf_scan) cuts the text the way a person reads the file:
 * column-0 lines are the top-level keys ("services:", "endpointSlices:"),
 * comments, blank lines or a leading "---"; a line "<col>- " under a key
 * starts an item, and every line after it that is more indented, blank or
 * a comment belongs to it, up to the next item or key. Anything else (flow
 * style at the top, a key it does not know, text at an odd indentation, a
 * second "---", ...) makes it give up, and the whole file is parsed.
 *
 * Why an item parsed on its own gives what it gives in the file: its text
 * is the whole entry (the next entry starts at a line "<col>- ", and every
 * line in between is more indented, blank or a comment), so no token of
 * the file crosses the cut. An item whose text would continue past it (an
 * unclosed quote, bracket or flow mapping) does not parse on its own, and
 * the whole file is parsed then. After a whole parse the cut is checked
 * against where the parser saw each item start; the file is remembered
 * only if they agree.
 *
 * The text between items (the keys, comments before the first item of a
 * list, the header) must be what it was in the last good file (a hash of
 * it is kept), since nothing else parses it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_file.h"

enum { K_SVC, K_SLICE, K_MAX };

/* An item's text: a 128-bit hash and its length. */
struct cf_item {
	uint64_t h[2];
	size_t len;
};

/* ---- Hashing ---- */

#define P1 0x9e3779b97f4a7c15ULL
#define P2 0xc2b2ae3d27d4eb4fULL
#define P3 0x165667b19e3779f9ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
	return x << r | x >> (64 - r);
}

/* A 64-bit finaliser (SplitMix64's): every input bit reaches every output bit. */
static inline uint64_t fin64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ x >> 31;
}

static inline uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * A 128-bit hash of n bytes: two 64-bit lanes that each take in every
 * 16-byte block (one multiply per lane and block: a few GB/s, so hashing a
 * 10 MB file costs a few milliseconds). Not cryptographic: the file's
 * author is trusted, and two different texts of one item agree by chance
 * about once in 2^100 edits.
 */
static void text_hash(const void *buf, size_t n, uint64_t out[2])
{
	const unsigned char *p = buf;
	uint64_t a = P1 ^ n, b = P2 + n, x, y;
	unsigned char tail[16];

	for (; n >= 16; p += 16, n -= 16) {
		x = rd64(p);
		y = rd64(p + 8);
		a = rotl64((a ^ x) * P1, 29) + y;
		b = rotl64((b ^ y) * P2, 31) + x;
	}
	if (n) {
		memset(tail, 0, sizeof(tail));
		memcpy(tail, p, n);
		x = rd64(tail);
		y = rd64(tail + 8);
		a = rotl64((a ^ x) * P1, 29) + y;
		b = rotl64((b ^ y) * P2, 31) + x;
	}
	out[0] = fin64(a ^ rotl64(b, 17));
	out[1] = fin64(b + a * P3);
}

/* ---- Reading in pieces ---- */

/*
 * The text, through a window: [win_off, win_off + fill) of it is at buf.
 * From a file, the window is a buffer reused from read to read, so a load
 * does not allocate (and fault in) the whole file's size again: the scan
 * and the hashes need one line or one item at a time. From memory, the
 * window is the text itself (or, for tests, copies of it in pieces).
 */
struct src {
	int fd; /* or -1: from mem */
	const char *mem;
	size_t mem_len, mem_pos;
	size_t chunk; /* bytes per read */
	bool direct; /* the window is mem, whole */
	char *own; /* the window's buffer */
	size_t cap;
	const char *buf;
	size_t win_off, fill;
	bool eof;
};

/* Bytes per read from a file. */
#define SRC_CHUNK (256u << 10)

static void src_mem(struct src *in, const char *mem, size_t len, size_t chunk)
{
	memset(in, 0, sizeof(*in));
	in->fd = -1;
	in->mem = mem;
	in->mem_len = len;
	in->chunk = chunk ? chunk : SRC_CHUNK;
	in->direct = !chunk || chunk >= len;
	if (in->direct) {
		in->buf = mem;
		in->fill = len;
		in->eof = true;
	}
}

static void src_fd(struct src *in, int fd, size_t chunk)
{
	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->chunk = chunk ? chunk : SRC_CHUNK;
}

static void src_free(struct src *in)
{
	if (in->own)
		munmap(in->own, in->cap);
}

/*
 * Keep the window from keep on (an absolute offset in it) and read one more
 * piece after it, growing the buffer when the kept part fills it (a line or
 * an item longer than a piece). 0, -ENOMEM, -EFBIG or the -errno of read.
 */
static int src_more(struct src *in, size_t keep)
{
	size_t kept = in->win_off + in->fill - keep, cap;
	ssize_t r;
	char *nb;

	if (in->direct || in->eof) {
		in->eof = true;
		return 0;
	}
	if (kept + in->chunk > in->cap) {
		/* Pages of its own: a load leaves nothing in the heap. */
		for (cap = in->cap ? in->cap : in->chunk; cap < kept + in->chunk; cap *= 2)
			;
		nb = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (nb == MAP_FAILED)
			return -ENOMEM;
		if (kept)
			memcpy(nb, in->buf + (keep - in->win_off), kept);
		src_free(in);
		in->own = nb;
		in->cap = cap;
	} else if (kept) {
		memmove(in->own, in->buf + (keep - in->win_off), kept);
	}
	in->buf = in->own;
	in->win_off = keep;
	in->fill = kept;
	if (in->fd >= 0) {
		do
			r = read(in->fd, in->own + kept, in->chunk);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -errno;
	} else {
		r = (ssize_t)(in->mem_len - in->mem_pos < in->chunk ? in->mem_len - in->mem_pos :
								       in->chunk);
		memcpy(in->own + kept, in->mem + in->mem_pos, (size_t)r);
		in->mem_pos += (size_t)r;
	}
	in->fill += (size_t)r;
	in->eof = r == 0;
	return in->win_off + in->fill > SP_CONFIG_MAX_BYTES ? -EFBIG : 0;
}

/* ---- The line scan ---- */

struct span {
	size_t off, len;
};

struct scan {
	struct span *v[K_MAX];
	size_t n[K_MAX], cap[K_MAX];
	int col[K_MAX]; /* the items' column in each list */
	uint64_t skel[2];
	const char *why; /* why it gave up, or NULL */
	/* Called with each item's text once it is complete (the window
	 * holds it then): 0 or -errno. */
	int (*item)(void *arg, int k, size_t i, const char *text, size_t len);
	void *arg;
	/* Where the scan is */
	int sec, cur; /* the list the lines are in; the list of the open item (or -1) */
	bool dashes, any_key, seen[K_MAX];
	/* With keep_text, the text between the items too (load_items parses
	 * it); nomem: it could not be kept. */
	bool keep_text, nomem;
	char *text;
	size_t text_len, text_cap;
};

static void scan_free(struct scan *s)
{
	int k;

	for (k = 0; k < K_MAX; k++)
		free(s->v[k]);
	free(s->text);
}

static int scan_push(struct scan *s, int k, size_t off)
{
	if (s->n[k] == s->cap[k]) {
		size_t cap = s->cap[k] ? s->cap[k] * 2 : 256;
		struct span *v = reallocarray(s->v[k], cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v[k] = v;
		s->cap[k] = cap;
	}
	s->v[k][s->n[k]++] = (struct span){ .off = off };
	return 0;
}

/* The open item ends at end (the window holds it). */
static int item_end(struct scan *s, const struct src *in, size_t end)
{
	int k = s->cur;
	struct span *sp = &s->v[k][s->n[k] - 1];

	sp->len = end - sp->off;
	s->cur = -1;
	return s->item(s->arg, k, s->n[k] - 1, in->buf + (sp->off - in->win_off), sp->len);
}

/* Room for need bytes in *buf of capacity *cap: the capacity doubles from
 * first until it holds them. 0, or -ENOMEM with *buf as it was. */
static int buf_reserve(char **buf, size_t *cap, size_t need, size_t first)
{
	size_t c = *cap ? *cap : first;
	char *v;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	v = realloc(*buf, c);
	if (!v)
		return -ENOMEM;
	*buf = v;
	*cap = c;
	return 0;
}

/* Fold one line of the text between items into the skeleton hash. */
static void skel_add(struct scan *s, const char *line, size_t len)
{
	uint64_t h[2];

	if (s->keep_text && !s->nomem) {
		if (buf_reserve(&s->text, &s->text_cap, s->text_len + len, 256))
			s->nomem = true;
		if (!s->nomem) {
			memcpy(s->text + s->text_len, line, len);
			s->text_len += len;
		}
	}

	text_hash(line, len, h);
	s->skel[0] = fin64(rotl64(s->skel[0], 23) ^ h[0]);
	s->skel[1] = fin64(s->skel[1] * P3 + h[1]);
}

/* "services:" or "endpointSlices:" alone on its line (spaces, a comment
 * after a space may follow): the list's K_*, or -1. */
static int top_key(const char *l, size_t len)
{
	static const char *const keys[K_MAX] = { "services:", "endpointSlices:" };
	size_t kl, i;
	int k;

	for (k = 0; k < K_MAX; k++) {
		kl = strlen(keys[k]);
		if (len < kl || memcmp(l, keys[k], kl))
			continue;
		for (i = kl; i < len && l[i] == ' '; i++)
			;
		if (i == len || (i > kl && l[i] == '#'))
			return k;
	}
	return -1;
}

static bool only_spaces(const char *l, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (l[i] != ' ')
			return false;
	return true;
}

/* One line, l[0..ll) at pos, the next at next. 0 (s->why: given up) or -errno. */
static int scan_line(struct scan *s, const struct src *in, const char *l, size_t ll, size_t pos,
		     size_t next)
{
	size_t ind;
	int k, rc;

	for (ind = 0; ind < ll && l[ind] == ' '; ind++)
		;
	if (ind == ll || l[ind] == '#') {
		/* Blank or a comment: the open item's, else between items. */
		if (s->cur < 0)
			skel_add(s, l, next - pos);
		return 0;
	}
	if (s->sec >= 0 && (s->col[s->sec] < 0 || (int)ind == s->col[s->sec]) && l[ind] == '-' &&
	    (ind + 1 == ll || l[ind + 1] == ' ')) {
		/* "<col>- ": an item starts (the first one sets the column). */
		if (s->cur >= 0 && (rc = item_end(s, in, pos)))
			return rc;
		s->col[s->sec] = (int)ind;
		if (scan_push(s, s->sec, pos))
			return -ENOMEM;
		s->cur = s->sec;
		return 0;
	}
	if (s->cur >= 0 && (int)ind > s->col[s->cur])
		return 0; /* more of the open item */
	if (ind) {
		s->why = "a line at an indentation the scan does not know";
		return 0;
	}
	k = top_key(l, ll);
	if (k >= 0) {
		if (s->seen[k]) {
			s->why = "a top-level key twice";
			return 0;
		}
		s->seen[k] = true;
		if (s->cur >= 0 && (rc = item_end(s, in, pos)))
			return rc;
		s->sec = k;
		s->any_key = true;
		/* Between two lists: "services:" then "endpointSlices:"
		 * (the first may have no item, then its column stays -1). */
		skel_add(s, l, next - pos);
		return 0;
	}
	if (!s->any_key && !s->dashes && ll >= 3 && !memcmp(l, "---", 3) &&
	    only_spaces(l + 3, ll - 3)) {
		s->dashes = true; /* the explicit start of the one document */
		skel_add(s, l, next - pos);
		return 0;
	}
	s->why = "top-level content other than the two lists";
	return 0;
}

/*
 * Cut the text into items (see the top of this file), handing each to
 * s->item. 0 (s->why says if it gave up), -ENOMEM, or an error of the
 * reading (-EFBIG, -errno).
 */
static int cf_scan(struct src *in, struct scan *s)
{
	size_t pos = 0, avail, ll;
	const char *l, *nl;
	int rc;

	s->col[K_SVC] = s->col[K_SLICE] = -1;
	s->sec = s->cur = -1;
	s->skel[0] = P1;
	s->skel[1] = P2;
	for (;;) {
		avail = in->win_off + in->fill - pos;
		l = avail ? in->buf + (pos - in->win_off) : NULL;
		nl = avail ? memchr(l, '\n', avail) : NULL;
		if (!nl && !in->eof) {
			/* The window ends in this line: keep it (and the open
			 * item) and read on. */
			rc = src_more(in, s->cur >= 0 ? s->v[s->cur][s->n[s->cur] - 1].off : pos);
			if (rc)
				return rc;
			continue;
		}
		if (!avail)
			break;
		ll = nl ? (size_t)(nl - l) : avail;
		rc = scan_line(s, in, l, ll, pos, pos + ll + (nl ? 1 : 0));
		if (rc || s->why)
			return rc;
		pos += ll + (nl ? 1 : 0);
	}
	if (s->cur >= 0 && (rc = item_end(s, in, pos)))
		return rc;
	if (!s->any_key)
		s->why = "no top-level key";
	return 0;
}

/*
 * After a whole parse: does the cut agree with the parser? Each item's node
 * must start inside the span the scan gave it, after its "- ", and there
 * must be as many of each. libyaml counts characters, and line breaks the
 * scan does not know (\r, NEL, LS, PS) would move lines: a file with any of
 * those is not remembered.
 */
static const char *scan_agrees(const char *buf, size_t len, const struct scan *s,
			       const struct sp_config_items *items)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i, j, ci = 0, n, *off;
	int k;

	if (!items->whole)
		return "the file's shape needed the tree walk";
	if (s->n[K_SVC] != items->n_services || s->n[K_SLICE] != items->n_slices)
		return "the scan and the parser disagree about the items";
	for (i = 0; i < len; i++) {
		if (p[i] == '\r' || (p[i] == 0xc2 && i + 1 < len && p[i + 1] == 0x85) ||
		    (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
		     (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)))
			return "line breaks other than \\n";
	}
	for (k = 0; k < K_MAX; k++) {
		n = s->n[k];
		off = k == K_SVC ? items->service_off : items->slice_off;
		ci = 0;
		i = 0; /* byte position, ci its character index */
		for (j = 0; j < n; j++) {
			size_t start = s->v[k][j].off, end = start + s->v[k][j].len, cs, ce;

			for (; i < start; i++)
				ci += (p[i] & 0xc0) != 0x80;
			cs = ci;
			for (; i < end; i++)
				ci += (p[i] & 0xc0) != 0x80;
			ce = ci;
			if (off[j] < cs + (size_t)s->col[k] + 1 || off[j] >= ce)
				return "the scan and the parser disagree about the items";
		}
	}
	return NULL;
}

/* ---- Checks across items ---- */

/*
 * What a whole parse checks across the file (config.c: claims, check_dups,
 * slice_service_exists): one Service per namespace/name, one slice per
 * namespace/name, each VIP and nodePort claimed once, each slice's Service
 * in the file. The good file's claims are kept counted by key (a 64-bit
 * hash), so a load checks only what its changed items add and take away:
 * the cost follows the change, not the file. Two different keys with one
 * hash count as a duplicate (the whole parse then decides, and says it if
 * it is one); a slice's Service is compared by name, not by hash.
 */
enum { CK_SVC = 1, CK_SLICE, CK_VIP, CK_NP, CK_REF /* a slice's Service: a CK_SVC key */ };

struct kent {
	uint64_t h; /* 0: an empty slot */
	uint32_t n; /* items that claim the key */
	uint32_t refs; /* CK_SVC keys: slices that name the Service */
	const char *ns, *name; /* CK_SVC keys with n == 1: the Service's own strings */
};

struct kidx {
	struct kent *v;
	size_t mask, used; /* used: slots taken (keys whose counts fell to 0 stay) */
};

static uint64_t key_hash(int kind, const void *a, size_t alen, const char *b)
{
	uint64_t h[2], g[2] = { 0, 0 };

	text_hash(a, alen, h);
	if (b)
		text_hash(b, strlen(b), g);
	h[0] = fin64(h[0] ^ rotl64(g[0], 1) ^ (uint64_t)(kind == CK_REF ? CK_SVC : kind) * P3);
	return h[0] ? h[0] : 1;
}

/* The slot of h, or the empty one where it goes. */
static struct kent *kidx_slot(const struct kidx *t, uint64_t h)
{
	size_t i;

	for (i = h & t->mask; t->v[i].h && t->v[i].h != h; i = (i + 1) & t->mask)
		;
	return &t->v[i];
}

/* Where the claims of an item go: kind, key hash, and for CK_SVC and
 * CK_REF the namespace and name. */
typedef void (*claim_fn)(void *arg, int kind, uint64_t h, const char *ns, const char *name);

static void vip_claims(const struct sp_service *s, const struct sp_ip *ips, size_t n,
		       claim_fn fn, void *arg)
{
	uint8_t key[20];
	size_t i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < s->n_ports; j++) {
			key[0] = ips[i].family;
			memcpy(&key[1], ips[i].b, 16);
			key[17] = s->ports[j].port >> 8;
			key[18] = s->ports[j].port & 0xff;
			key[19] = s->ports[j].proto;
			fn(arg, CK_VIP, key_hash(CK_VIP, key, sizeof(key), NULL), NULL, NULL);
		}
	}
}

static void np_claim(uint16_t port, uint8_t proto, claim_fn fn, void *arg)
{
	uint8_t key[3] = { port >> 8, port & 0xff, proto };

	fn(arg, CK_NP, key_hash(CK_NP, key, sizeof(key), NULL), NULL, NULL);
}

/* What a Service claims, as parse_service claims it. */
static void svc_claims(const struct sp_service *s, claim_fn fn, void *arg)
{
	size_t j;

	fn(arg, CK_SVC, key_hash(CK_SVC, s->ns, strlen(s->ns), s->name), s->ns, s->name);
	/* Headless Services claim no address and no nodePort. */
	if (!s->headless) {
		vip_claims(s, s->cluster_ips, s->n_cluster_ips, fn, arg);
		vip_claims(s, s->external_ips, s->n_external_ips, fn, arg);
		for (j = 0; j < s->n_ports; j++)
			if (s->ports[j].node_port)
				np_claim(s->ports[j].node_port, s->ports[j].proto, fn, arg);
	}
	vip_claims(s, s->lb_ips, s->n_lb_ips, fn, arg);
	if (s->health_check_node_port)
		np_claim(s->health_check_node_port, IPPROTO_TCP, fn, arg);
}

/* A slice: its name, and the Service it needs. */
static void slice_claims(const struct sp_slice *sl, claim_fn fn, void *arg)
{
	fn(arg, CK_SLICE, key_hash(CK_SLICE, sl->ns, strlen(sl->ns), sl->name), NULL, NULL);
	fn(arg, CK_REF, key_hash(CK_REF, sl->ns, strlen(sl->ns), sl->service_name), sl->ns,
	   sl->service_name);
}

/* Count one claim of a good model into the index (room is there). */
static void kidx_count(void *arg, int kind, uint64_t h, const char *ns, const char *name)
{
	struct kidx *t = arg;
	struct kent *e = kidx_slot(t, h);

	if (!e->h) {
		e->h = h;
		t->used++;
	}
	if (kind == CK_REF) {
		e->refs++;
		return;
	}
	e->n++;
	if (kind == CK_SVC) {
		e->ns = ns;
		e->name = name;
	}
}

/* The keys of a good model (a slice's Service shares its Service's key). */
static size_t model_keys(const struct sp_model *m)
{
	size_t n = 0, i, j;

	for (i = 0; i < m->n_services; i++) {
		const struct sp_service *s = &m->services[i];

		n += 2 + (s->n_cluster_ips + s->n_external_ips + s->n_lb_ips) * s->n_ports;
		for (j = 0; j < s->n_ports; j++)
			n += s->ports[j].node_port != 0;
	}
	return n + m->n_slices;
}

/*
 * The index of a good model, at most half full (10,000 Services with a
 * slice each: 30,000 keys, 2 MiB). Changes fill it further (keys that
 * come and go keep their slots): at half full it is built again.
 * 0 or -ENOMEM.
 */
static int kidx_build(struct kidx *t, const struct sp_model *m)
{
	struct kidx nt = { 0 };
	size_t cap, i;

	for (cap = 256; cap < 2 * model_keys(m) + 64; cap *= 2)
		;
	nt.v = calloc(cap, sizeof(*nt.v));
	if (!nt.v)
		return -ENOMEM;
	nt.mask = cap - 1;
	for (i = 0; i < m->n_services; i++)
		svc_claims(&m->services[i], kidx_count, &nt);
	for (i = 0; i < m->n_slices; i++)
		slice_claims(&m->slices[i], kidx_count, &nt);
	free(t->v);
	*t = nt;
	return 0;
}

/* What one load changes in the index: per key, the claims added and taken away. */
struct dent {
	uint64_t h;
	int kind; /* CK_SVC for CK_REF keys */
	int32_t dn, drefs;
	const char *add_ns, *add_name; /* a Service added with this name */
	const char *del_ns, *del_name; /* a Service taken away */
	const char *ref_ns, *ref_name; /* what an added slice names */
	bool odd; /* two different names for one hash */
};

struct delta {
	struct dent *v;
	size_t mask, n;
	int sign; /* +1: the claims of an added item, -1: of a removed one */
	bool nomem;
};

static bool str2_eq(const char *a, const char *b, const char *c, const char *d)
{
	return !strcmp(a, c) && !strcmp(b, d);
}

static void delta_claim(void *arg, int kind, uint64_t h, const char *ns, const char *name)
{
	struct delta *d = arg;
	struct dent *e;
	size_t i;

	if (d->n * 2 >= d->mask) { /* keep it at most half full */
		struct dent *v = calloc(2 * (d->mask + 1), sizeof(*v)), *o;

		if (!v) {
			d->nomem = true;
			return;
		}
		for (i = 0; i <= d->mask; i++) {
			size_t j;

			o = &d->v[i];
			if (!o->h)
				continue;
			for (j = o->h & (2 * d->mask + 1); v[j].h; j = (j + 1) & (2 * d->mask + 1))
				;
			v[j] = *o;
		}
		free(d->v);
		d->v = v;
		d->mask = 2 * d->mask + 1;
	}
	for (i = h & d->mask; d->v[i].h && d->v[i].h != h; i = (i + 1) & d->mask)
		;
	e = &d->v[i];
	if (!e->h) {
		e->h = h;
		e->kind = kind == CK_REF ? CK_SVC : kind;
		d->n++;
	} else if (e->kind != (kind == CK_REF ? CK_SVC : kind)) {
		e->odd = true;
	}
	if (kind == CK_REF) {
		e->drefs += d->sign;
		if (d->sign > 0) {
			if (e->ref_ns && !str2_eq(e->ref_ns, e->ref_name, ns, name))
				e->odd = true;
			e->ref_ns = ns;
			e->ref_name = name;
		}
		return;
	}
	e->dn += d->sign;
	if (kind != CK_SVC)
		return;
	if (d->sign > 0) {
		e->add_ns = ns;
		e->add_name = name;
	} else {
		e->del_ns = ns;
		e->del_name = name;
	}
}

/*
 * Would the index with d applied be a good file's? NULL if so, else what
 * is wrong (for the log; the whole parse gives the message).
 */
static const char *delta_check(const struct kidx *t, const struct delta *d)
{
	const char *own_ns, *own_name;
	const struct kent *e;
	const struct dent *x;
	int64_t n, refs;
	size_t i;

	for (i = 0; i <= d->mask; i++) {
		x = &d->v[i];
		if (!x->h)
			continue;
		if (x->odd)
			return "two keys with one hash";
		e = kidx_slot(t, x->h);
		n = (int64_t)(e->h ? e->n : 0) + x->dn;
		refs = (int64_t)(e->h ? e->refs : 0) + x->drefs;
		if (n > 1)
			return "a name, VIP or nodePort claimed twice";
		if (x->kind != CK_SVC || refs <= 0)
			continue;
		if (n <= 0)
			return "a slice whose Service is not in the file";
		/* The Service the slices find: the one added, else the one
		 * that was there (same name, or a hash that is not the name). */
		own_ns = x->add_ns ? x->add_ns : e->ns;
		own_name = x->add_ns ? x->add_name : e->name;
		if (!own_ns)
			return "two keys with one hash";
		if (x->add_ns && x->del_ns && !str2_eq(x->add_ns, x->add_name, x->del_ns, x->del_name))
			return "two keys with one hash";
		if (x->ref_ns && !str2_eq(own_ns, own_name, x->ref_ns, x->ref_name))
			return "a slice whose Service is not in the file";
	}
	return NULL;
}

/* Apply a checked delta (room is there: see the caller). */
static void delta_apply(struct kidx *t, const struct delta *d)
{
	const struct dent *x;
	struct kent *e;
	size_t i;

	for (i = 0; i <= d->mask; i++) {
		x = &d->v[i];
		if (!x->h)
			continue;
		e = kidx_slot(t, x->h);
		if (!e->h) {
			e->h = x->h;
			t->used++;
		}
		e->n = (uint32_t)((int64_t)e->n + x->dn);
		e->refs = (uint32_t)((int64_t)e->refs + x->drefs);
		if (x->kind != CK_SVC)
			continue;
		if (x->add_ns) {
			e->ns = x->add_ns;
			e->name = x->add_name;
		} else if (!e->n) {
			e->ns = e->name = NULL;
		}
	}
}

/* ---- The file ---- */

struct sp_config_file {
	char *name;
	struct sp_model m; /* the last good model */
	/* The items of the text m came from, in model order (NULL when the
	 * file's text could not be cut into items: the next load is whole). */
	struct cf_item *it[K_MAX];
	uint64_t skel[2]; /* hash of the text between the items */
	struct kidx ki; /* what m claims, counted */
	bool known; /* it[], skel and ki describe m and its text */
	const char *why_unknown;
	char **changed; /* of the last load, sorted, unique */
	size_t n_changed;
	bool whole; /* the last good load parsed the whole file */
	size_t chunk; /* bytes per read (0: SRC_CHUNK; from memory: the whole text) */
	struct sp_config_file_stats st;
};

int sp_config_file_new(const char *name, struct sp_config_file **out)
{
	struct sp_config_file *cf = calloc(1, sizeof(*cf));

	if (!cf || !(cf->name = strdup(name))) {
		free(cf);
		return -ENOMEM;
	}
	cf->why_unknown = "no good parse yet";
	/* As the whole parse hands a model out: arrays even when empty. */
	cf->m.services = calloc(1, sizeof(*cf->m.services));
	cf->m.slices = calloc(1, sizeof(*cf->m.slices));
	if (!cf->m.services || !cf->m.slices) {
		sp_config_file_free(cf);
		return -ENOMEM;
	}
	*out = cf;
	return 0;
}

static void changed_clear(struct sp_config_file *cf)
{
	while (cf->n_changed)
		free(cf->changed[--cf->n_changed]);
	free(cf->changed);
	cf->changed = NULL;
}

static void forget(struct sp_config_file *cf, const char *why)
{
	int k;

	for (k = 0; k < K_MAX; k++) {
		free(cf->it[k]);
		cf->it[k] = NULL;
	}
	free(cf->ki.v);
	memset(&cf->ki, 0, sizeof(cf->ki));
	cf->known = false;
	cf->why_unknown = why;
}

void sp_config_file_free(struct sp_config_file *cf)
{
	if (!cf)
		return;
	forget(cf, NULL);
	changed_clear(cf);
	sp_model_free(&cf->m);
	free(cf->name);
	free(cf);
}

void sp_config_file_reset(struct sp_config_file *cf)
{
	forget(cf, "a whole parse was asked for");
}

const struct sp_model *sp_config_file_model(const struct sp_config_file *cf)
{
	return &cf->m;
}

int sp_config_file_changed(const struct sp_config_file *cf, const char *const **names, size_t *n)
{
	static const char *const none[1];

	if (cf->whole)
		return 1;
	/* Never NULL: an empty list is "nothing changed", not "everything". */
	*names = cf->changed ? (const char *const *)cf->changed : none;
	*n = cf->n_changed;
	return 0;
}

void sp_config_file_stats(const struct sp_config_file *cf, struct sp_config_file_stats *st)
{
	*st = cf->st;
}

/* Room for item i in a growing array of n-byte entries. 0 or -ENOMEM. */
static int grow_to(void **v, size_t *cap, size_t i, size_t size)
{
	size_t ncap;
	void *nv;

	if (i < *cap)
		return 0;
	for (ncap = *cap ? *cap : 256; ncap <= i; ncap *= 2)
		;
	nv = realloc(*v, ncap * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

/* An array of exactly n entries. 0 or -ENOMEM. */
static int grow_exact(void **v, size_t *cap, size_t n, size_t size)
{
	void *nv = realloc(*v, n * size);

	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = n;
	return 0;
}

/* The items' hashes, as the scan hands them over (the whole parse's). */
struct hashes {
	struct cf_item *it[K_MAX];
	size_t cap[K_MAX];
};

static int hash_item(void *arg, int k, size_t i, const char *text, size_t len)
{
	struct hashes *h = arg;

	if (grow_to((void **)&h->it[k], &h->cap[k], i, sizeof(*h->it[k])))
		return -ENOMEM;
	text_hash(text, len, h->it[k][i].h);
	h->it[k][i].len = len;
	return 0;
}

/* The whole parse: the reference. On success the file is remembered if
 * the scan agrees with it. */
static int load_whole(struct sp_config_file *cf, const char *buf, size_t len, const char *why,
		      char *err, size_t errlen)
{
	struct sp_config_items items = { 0 };
	struct hashes h = { 0 };
	struct scan s = { .item = hash_item, .arg = &h };
	struct sp_model m = { 0 };
	struct src in;
	const char *bad;
	int rc, k;

	rc = sp_config_parse_buf_items(buf, len, cf->name, &m, &items, err, errlen);
	if (rc) {
		sp_config_items_free(&items);
		return rc;
	}
	sp_model_free(&cf->m);
	cf->m = m;
	changed_clear(cf);
	cf->whole = true;
	cf->st.incremental = false;
	cf->st.items = m.n_services + m.n_slices;
	cf->st.parsed = cf->st.items;
	cf->st.why_whole = why;
	cf->st.threads = 1;
	cf->st.n_whole++;
	forget(cf, "the file could not be cut into items");
	/* Remember its items for the next load (not being able to is no
	 * error: the next load is whole too). */
	src_mem(&in, buf, len, 0);
	rc = cf_scan(&in, &s);
	bad = rc ? "out of memory" : s.why;
	if (!bad)
		bad = scan_agrees(buf, len, &s, &items);
	if (!bad && kidx_build(&cf->ki, &cf->m))
		bad = "out of memory";
	if (bad) {
		for (k = 0; k < K_MAX; k++)
			free(h.it[k]);
		cf->why_unknown = bad;
	} else {
		for (k = 0; k < K_MAX; k++)
			cf->it[k] = h.it[k];
		cf->skel[0] = s.skel[0];
		cf->skel[1] = s.skel[1];
		cf->known = true;
	}
	scan_free(&s);
	sp_config_items_free(&items);
	return 0;
}

/*
 * A whole load by items, on several threads: the file cut by the scan, each
 * item parsed on its own (as a reload parses a changed one), the checks
 * across items made on everything as a reload makes them on a change
 * (delta_check against an empty index). libyaml is most of a parse and
 * cannot be shared, but items can: at 10,000 Services this is most of the
 * daemon's start (issue 11). Anything the scan is not sure of, or any item
 * or check that fails, and the caller parses the whole file in one pass,
 * which is the reference and has every message; so this never refuses a
 * file, and gives the model the whole parse gives (the argument at the top
 * of this file).
 */
#define ITEMS_MIN_PARALLEL 1024 /* fewer items: one thread (a thread costs more) */
#define ITEMS_MAX_THREADS 4
/* Items a thread takes at a time, parsed as one text (one libyaml parser:
 * its set-up per item was a tenth of the parse) */
#define ITEMS_GRAIN 64

struct items_job {
	const char *buf;
	const struct scan *s;
	struct sp_model *m;
	size_t grain; /* items per parse: ITEMS_GRAIN, 1 if the text is not ASCII */
	size_t chunks[K_MAX]; /* runs of grain items in each list */
	size_t next; /* the next run to take, services' then slices' (atomic) */
	int rc; /* the first failure (atomic; 0: none) */
};

static void *items_worker(void *arg)
{
	struct items_job *j = arg;
	size_t c, first, n, i, starts[ITEMS_GRAIN];
	const struct span *sp;
	int rc, k, zero;

	for (;;) {
		c = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		if (c >= j->chunks[K_SVC] + j->chunks[K_SLICE] ||
		    __atomic_load_n(&j->rc, __ATOMIC_RELAXED))
			return NULL;
		k = c >= j->chunks[K_SVC];
		first = (k ? c - j->chunks[K_SVC] : c) * j->grain;
		n = j->s->n[k] - first < j->grain ? j->s->n[k] - first : j->grain;
		/* A run of items is the text from the first's start to the
		 * last's end (the spans are contiguous) */
		sp = &j->s->v[k][first];
		for (i = 0; i < n; i++)
			starts[i] = sp[i].off - sp[0].off;
		rc = sp_config_parse_items(j->buf + sp[0].off,
					   sp[n - 1].off + sp[n - 1].len - sp[0].off, k == K_SLICE, n,
					   starts, k ? NULL : &j->m->services[first],
					   k ? &j->m->slices[first] : NULL);
		if (rc) {
			zero = 0;
			__atomic_compare_exchange_n(&j->rc, &zero, rc, false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
			return NULL;
		}
	}
}

/*
 * The whole load by items (why: why a whole load). 0: cf holds the file's
 * model, as load_whole leaves it; 1: not sure (cf untouched: load_whole
 * decides, and has the message); -ENOMEM.
 */
static int load_items(struct sp_config_file *cf, const char *buf, size_t len, const char *why)
{
	const unsigned char *p = (const unsigned char *)buf;
	struct hashes h = { 0 };
	struct scan s = { .item = hash_item, .arg = &h, .keep_text = true };
	struct items_job j = { .buf = buf, .s = &s };
	struct sp_model skel = { 0 };
	pthread_t tid[ITEMS_MAX_THREADS - 1];
	struct sp_model m = { 0 };
	struct kidx none = { 0 }, ki = { 0 };
	struct delta d = { .mask = 63, .sign = 1 };
	size_t i, nt = 0, nthreads = 1;
	struct src in;
	long cpus;
	int rc, k;

	/* Line breaks the scan does not know (scan_agrees has the why). */
	j.grain = ITEMS_GRAIN;
	for (i = 0; i < len; i++) {
		if (p[i] < 0x80) {
			if (p[i] == '\r')
				return 1;
			continue;
		}
		j.grain = 1;
		if ((p[i] == 0xc2 && i + 1 < len && p[i + 1] == 0x85) ||
		    (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
		     (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)))
			return 1;
	}
	src_mem(&in, buf, len, 0);
	rc = cf_scan(&in, &s);
	if (rc || s.why) {
		rc = rc == -ENOMEM ? -ENOMEM : 1;
		goto out;
	}
	/* The text between the items: the keys, comments, a "---". In a
	 * reload it is the last good file's (its hash is compared); here it
	 * is parsed on its own, which must give a file with no item (a
	 * character libyaml refuses in a comment, say, makes it fail). */
	rc = -ENOMEM;
	if (s.nomem)
		goto out;
	rc = sp_config_parse_buf(s.text ? s.text : "", s.text_len, cf->name, &skel, NULL, 0);
	if (rc || skel.n_services || skel.n_slices) {
		rc = rc == -ENOMEM ? -ENOMEM : 1;
		goto out;
	}
	rc = -ENOMEM;
	m.n_services = s.n[K_SVC];
	m.n_slices = s.n[K_SLICE];
	m.services = calloc(m.n_services ? m.n_services : 1, sizeof(*m.services));
	m.slices = calloc(m.n_slices ? m.n_slices : 1, sizeof(*m.slices));
	if (!m.services || !m.slices)
		goto out;
	j.m = &m;
	for (k = 0; k < K_MAX; k++)
		j.chunks[k] = (s.n[k] + j.grain - 1) / j.grain;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (m.n_services + m.n_slices >= ITEMS_MIN_PARALLEL && cpus > 1)
		nthreads = cpus < ITEMS_MAX_THREADS ? (size_t)cpus : ITEMS_MAX_THREADS;
	for (nt = 0; nt + 1 < nthreads; nt++)
		if (pthread_create(&tid[nt], NULL, items_worker, &j))
			break; /* fewer threads, then */
	items_worker(&j);
	for (i = 0; i < nt; i++)
		pthread_join(tid[i], NULL);
	if (j.rc) {
		rc = j.rc == -ENOMEM ? -ENOMEM : 1;
		goto out;
	}
	/* Across items: everything is added to an empty file. */
	rc = -ENOMEM;
	d.v = calloc(d.mask + 1, sizeof(*d.v));
	if (!d.v || kidx_build(&none, &(struct sp_model){ 0 }))
		goto out;
	for (i = 0; i < m.n_services; i++)
		svc_claims(&m.services[i], delta_claim, &d);
	for (i = 0; i < m.n_slices; i++)
		slice_claims(&m.slices[i], delta_claim, &d);
	if (d.nomem || kidx_build(&ki, &m))
		goto out;
	rc = 1;
	if (delta_check(&none, &d))
		goto out;
	/* Keep it, as load_whole does. */
	sp_model_free(&cf->m);
	cf->m = m;
	memset(&m, 0, sizeof(m));
	changed_clear(cf);
	cf->whole = true;
	cf->st.incremental = false;
	cf->st.items = cf->m.n_services + cf->m.n_slices;
	cf->st.parsed = cf->st.items;
	cf->st.why_whole = why;
	cf->st.threads = nt + 1;
	cf->st.n_whole++;
	forget(cf, "the file could not be cut into items");
	for (k = 0; k < K_MAX; k++) {
		cf->it[k] = h.it[k];
		h.it[k] = NULL;
	}
	cf->ki = ki;
	memset(&ki, 0, sizeof(ki));
	cf->skel[0] = s.skel[0];
	cf->skel[1] = s.skel[1];
	cf->known = true;
	rc = 0;
out:
	sp_model_free(&skel);
	sp_model_free(&m); /* entries not parsed are zeroed */
	for (k = 0; k < K_MAX; k++)
		free(h.it[k]);
	free(ki.v);
	free(none.v);
	free(d.v);
	scan_free(&s);
	return rc;
}

/* Old items by text, for the new ones to find: open addressing on h[0]. */
struct itable {
	size_t *slot; /* old index + 1; 0: empty */
	size_t mask;
};

static int itable_build(struct itable *t, const struct cf_item *v, size_t n)
{
	size_t cap, i, j;

	for (cap = 64; cap < 2 * n; cap *= 2)
		;
	t->slot = calloc(cap, sizeof(*t->slot));
	if (!t->slot)
		return -ENOMEM;
	t->mask = cap - 1;
	for (i = 0; i < n; i++) {
		for (j = v[i].h[0] & t->mask; t->slot[j]; j = (j + 1) & t->mask)
			;
		t->slot[j] = i + 1;
	}
	return 0;
}

static bool item_eq(const struct cf_item *a, const struct cf_item *b)
{
	return a->h[0] == b->h[0] && a->h[1] == b->h[1] && a->len == b->len;
}

/* The unused old item with this text, marked used; or SIZE_MAX. */
static size_t itable_take(struct itable *t, const struct cf_item *v, const struct cf_item *x,
			  bool *used)
{
	size_t j, o;

	for (j = x->h[0] & t->mask; t->slot[j]; j = (j + 1) & t->mask) {
		o = t->slot[j] - 1;
		if (item_eq(&v[o], x) && !used[o]) {
			used[o] = true;
			return o;
		}
	}
	return SIZE_MAX;
}

/* "namespace/name" onto the list. 0 or -ENOMEM. */
static int name_add(char ***v, size_t *n, size_t *cap, const char *ns, const char *name)
{
	char *str;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		char **nv = reallocarray(*v, ncap, sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	if (asprintf(&str, "%s/%s", ns, name) < 0)
		return -ENOMEM;
	(*v)[(*n)++] = str;
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What one incremental load builds before it is kept. */
struct inc {
	struct sp_config_file *cf;
	struct scan s;
	struct itable t[K_MAX]; /* the old items by text */
	struct cf_item *it[K_MAX]; /* the new items */
	size_t cap_it[K_MAX], cap_src[K_MAX], cap_txt[K_MAX];
	size_t *src[K_MAX]; /* each new item's old index, or SIZE_MAX: parsed */
	size_t *txt[K_MAX]; /* the parsed ones: where their text is in side */
	bool *used[K_MAX]; /* old items taken */
	size_t n_old[K_MAX], next[K_MAX]; /* old items; the one after the last taken */
	char *side; /* the text of the items to parse (nothing else is kept) */
	size_t side_len, side_cap;
	struct sp_model m; /* the new model: old entries (shallow) and parsed ones */
	struct delta d; /* what the change does to the claims */
	char **names;
	size_t n_names, cap_names;
};

/* Free what inc holds; the parsed entries of m too, never the old ones. */
static void inc_free(struct inc *x)
{
	size_t i;
	int k;

	for (i = 0; x->src[K_SVC] && i < x->m.n_services; i++)
		if (x->src[K_SVC][i] == SIZE_MAX)
			sp_service_free(&x->m.services[i]);
	for (i = 0; x->src[K_SLICE] && i < x->m.n_slices; i++)
		if (x->src[K_SLICE][i] == SIZE_MAX)
			sp_slice_free(&x->m.slices[i]);
	free(x->m.services);
	free(x->m.slices);
	for (k = 0; k < K_MAX; k++) {
		free(x->t[k].slot);
		free(x->it[k]);
		free(x->src[k]);
		free(x->txt[k]);
		free(x->used[k]);
	}
	free(x->side);
	while (x->n_names)
		free(x->names[--x->n_names]);
	free(x->names);
	free(x->d.v);
	scan_free(&x->s);
}

/* An item of the new text: the old one with its text, else its text kept to be parsed. */
static int inc_item(void *arg, int k, size_t i, const char *text, size_t len)
{
	struct inc *x = arg;
	size_t o;

	if (grow_to((void **)&x->it[k], &x->cap_it[k], i, sizeof(*x->it[k])) ||
	    grow_to((void **)&x->src[k], &x->cap_src[k], i, sizeof(*x->src[k])) ||
	    grow_to((void **)&x->txt[k], &x->cap_txt[k], i, sizeof(*x->txt[k])))
		return -ENOMEM;
	text_hash(text, len, x->it[k][i].h);
	x->it[k][i].len = len;
	/* Most items are where they were, after the last one taken: that
	 * one first (in order, so memory is read in order), then the table.
	 * Two equal items: the second is parsed (and is a duplicate). */
	o = x->next[k];
	if (o < x->n_old[k] && !x->used[k][o] && item_eq(&x->cf->it[k][o], &x->it[k][i]))
		x->used[k][o] = true;
	else
		o = itable_take(&x->t[k], x->cf->it[k], &x->it[k][i], x->used[k]);
	if (o != SIZE_MAX)
		x->next[k] = o + 1;
	x->src[k][i] = o;
	if (o != SIZE_MAX)
		return 0;
	if (buf_reserve(&x->side, &x->side_cap, x->side_len + len, 4096))
		return -ENOMEM;
	memcpy(x->side + x->side_len, text, len);
	x->txt[k][i] = x->side_len;
	x->side_len += len;
	return 0;
}

/*
 * Try the new text (from in) item by item. 0: kept (cf holds the new
 * model); 1: not sure, *why says why (cf untouched: parse the whole file);
 * -ENOMEM.
 */
static int load_inc(struct sp_config_file *cf, struct src *in, const char **why)
{
	struct inc x = { .cf = cf, .s = { .item = inc_item } };
	size_t n[K_MAX], i, hi, parsed = 0;
	bool rebuild = false;
	int rc, k;

	x.s.arg = &x;
	n[K_SVC] = x.n_old[K_SVC] = cf->m.n_services;
	n[K_SLICE] = x.n_old[K_SLICE] = cf->m.n_slices;
	rc = -ENOMEM;
	for (k = 0; k < K_MAX; k++) {
		x.used[k] = calloc(n[k] ? n[k] : 1, sizeof(*x.used[k]));
		if (!x.used[k] || itable_build(&x.t[k], cf->it[k], n[k]))
			goto out;
		/* As many items as last time, as a rule: arrays of that size
		 * (item n[k] + 15 is there), not grown by doubling. */
		if (grow_exact((void **)&x.it[k], &x.cap_it[k], n[k] + 16, sizeof(*x.it[k])) ||
		    grow_exact((void **)&x.src[k], &x.cap_src[k], n[k] + 16, sizeof(*x.src[k])) ||
		    grow_exact((void **)&x.txt[k], &x.cap_txt[k], n[k] + 16, sizeof(*x.txt[k])))
			goto out;
	}
	/* Each new item takes the old one with its text, as the scan goes. */
	rc = cf_scan(in, &x.s);
	if (rc == -ENOMEM)
		goto out;
	if (rc) {
		*why = "the file could not be read";
		rc = 1;
		goto out;
	}
	rc = 1;
	if ((*why = x.s.why))
		goto out;
	if (x.s.skel[0] != cf->skel[0] || x.s.skel[1] != cf->skel[1]) {
		*why = "the text between the items changed";
		goto out;
	}
	rc = -ENOMEM;
	x.m.services = calloc(x.s.n[K_SVC] ? x.s.n[K_SVC] : 1, sizeof(*x.m.services));
	x.m.slices = calloc(x.s.n[K_SLICE] ? x.s.n[K_SLICE] : 1, sizeof(*x.m.slices));
	if (!x.m.services || !x.m.slices)
		goto out;
	x.m.n_services = x.s.n[K_SVC];
	x.m.n_slices = x.s.n[K_SLICE];
	/* The new items, parsed; the others as they were (shallow copies:
	 * cf's model owns them until this load is kept). */
	rc = 1;
	for (i = 0; i < x.m.n_services; i++) {
		if (x.src[K_SVC][i] != SIZE_MAX) {
			x.m.services[i] = cf->m.services[x.src[K_SVC][i]];
			continue;
		}
		parsed++;
		rc = sp_config_parse_item(x.side + x.txt[K_SVC][i], x.it[K_SVC][i].len, false,
					  &x.m.services[i], NULL);
		if (rc) { /* (the whole parse has the message) */
			*why = "an item that does not parse on its own";
			rc = rc == -ENOMEM ? -ENOMEM : 1;
			goto out;
		}
	}
	for (i = 0; i < x.m.n_slices; i++) {
		if (x.src[K_SLICE][i] != SIZE_MAX) {
			x.m.slices[i] = cf->m.slices[x.src[K_SLICE][i]];
			continue;
		}
		parsed++;
		rc = sp_config_parse_item(x.side + x.txt[K_SLICE][i], x.it[K_SLICE][i].len, true,
					  NULL, &x.m.slices[i]);
		if (rc) { /* (the whole parse has the message) */
			*why = "an item that does not parse on its own";
			rc = rc == -ENOMEM ? -ENOMEM : 1;
			goto out;
		}
	}
	/* The checks across items, on what the change adds and takes away. */
	rc = -ENOMEM;
	x.d.mask = 63;
	x.d.v = calloc(x.d.mask + 1, sizeof(*x.d.v));
	if (!x.d.v)
		goto out;
	x.d.sign = -1;
	for (i = 0; i < n[K_SVC]; i++)
		if (!x.used[K_SVC][i])
			svc_claims(&cf->m.services[i], delta_claim, &x.d);
	for (i = 0; i < n[K_SLICE]; i++)
		if (!x.used[K_SLICE][i])
			slice_claims(&cf->m.slices[i], delta_claim, &x.d);
	x.d.sign = 1;
	for (i = 0; i < x.m.n_services; i++)
		if (x.src[K_SVC][i] == SIZE_MAX)
			svc_claims(&x.m.services[i], delta_claim, &x.d);
	for (i = 0; i < x.m.n_slices; i++)
		if (x.src[K_SLICE][i] == SIZE_MAX)
			slice_claims(&x.m.slices[i], delta_claim, &x.d);
	if (x.d.nomem)
		goto out;
	rc = 1;
	if ((*why = delta_check(&cf->ki, &x.d)))
		goto out;
	/* The Services this touches: those of the items parsed, of the old
	 * items gone, and of items that moved past another (the order of a
	 * Service's slices is the order of its endpoints). */
	rc = -ENOMEM;
	for (k = 0; k < K_MAX; k++) {
		for (i = 0, hi = 0; i < x.s.n[k]; i++) {
			size_t o = x.src[k][i];
			bool moved = o != SIZE_MAX && o + 1 < hi;

			if (o != SIZE_MAX && o + 1 > hi)
				hi = o + 1;
			if (o != SIZE_MAX && !moved)
				continue;
			if (k == K_SVC ? name_add(&x.names, &x.n_names, &x.cap_names,
						  x.m.services[i].ns, x.m.services[i].name) :
					 name_add(&x.names, &x.n_names, &x.cap_names,
						  x.m.slices[i].ns, x.m.slices[i].service_name))
				goto out;
		}
		for (i = 0; i < n[k]; i++) {
			if (x.used[k][i])
				continue;
			if (k == K_SVC ? name_add(&x.names, &x.n_names, &x.cap_names,
						  cf->m.services[i].ns, cf->m.services[i].name) :
					 name_add(&x.names, &x.n_names, &x.cap_names,
						  cf->m.slices[i].ns, cf->m.slices[i].service_name))
				goto out;
		}
	}
	if (x.n_names) {
		size_t w = 0;

		qsort(x.names, x.n_names, sizeof(*x.names), str_cmp);
		for (i = 0; i < x.n_names; i++) {
			if (w && !strcmp(x.names[w - 1], x.names[i]))
				free(x.names[i]);
			else
				x.names[w++] = x.names[i];
		}
		x.n_names = w;
	}
	/* Keep it: the claims first (they point at the strings of the
	 * Services; a table too full to take the change is built again), then
	 * the old entries not taken go, and the taken ones move. */
	if ((cf->ki.used + x.d.n) * 2 > cf->ki.mask + 1)
		rebuild = true;
	else
		delta_apply(&cf->ki, &x.d);
	for (i = 0; i < n[K_SVC]; i++)
		if (!x.used[K_SVC][i])
			sp_service_free(&cf->m.services[i]);
	for (i = 0; i < n[K_SLICE]; i++)
		if (!x.used[K_SLICE][i])
			sp_slice_free(&cf->m.slices[i]);
	free(cf->m.services);
	free(cf->m.slices);
	cf->m = x.m;
	memset(&x.m, 0, sizeof(x.m));
	for (k = 0; k < K_MAX; k++) {
		free(cf->it[k]);
		cf->it[k] = x.it[k];
		x.it[k] = NULL;
	}
	changed_clear(cf);
	cf->changed = x.names;
	cf->n_changed = x.n_names;
	x.names = NULL;
	x.n_names = 0;
	cf->whole = false;
	cf->st.incremental = true;
	cf->st.threads = 1;
	cf->st.items = cf->m.n_services + cf->m.n_slices;
	cf->st.parsed = parsed;
	cf->st.why_whole = NULL;
	cf->st.n_incremental++;
	if (rebuild && kidx_build(&cf->ki, &cf->m))
		forget(cf, "out of memory");
	rc = 0;
out:
	inc_free(&x);
	return rc;
}

static int load_end(struct sp_config_file *cf, int rc, char *err, size_t errlen)
{
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", cf->name);
	return rc;
}

int sp_config_file_parse_buf(struct sp_config_file *cf, const char *buf, size_t len, char *err,
			     size_t errlen)
{
	const char *why = cf->why_unknown;
	struct src in;
	int rc;

	if (cf->known) {
		src_mem(&in, buf, len, cf->chunk);
		rc = load_inc(cf, &in, &why);
		src_free(&in);
		if (rc <= 0)
			return load_end(cf, rc, err, errlen);
	}
	rc = load_items(cf, buf, len, why);
	if (rc <= 0)
		return load_end(cf, rc, err, errlen);
	return load_whole(cf, buf, len, why, err, errlen);
}

int sp_config_file_load(struct sp_config_file *cf, char *err, size_t errlen)
{
	const char *why = cf->why_unknown;
	struct src in;
	struct stat st;
	size_t len;
	char *buf;
	int rc, fd;

	/* Read in pieces for the items; anything odd (cannot open, too big,
	 * a read error) is for the whole read, which has the messages. */
	if (cf->known && (fd = open(cf->name, O_RDONLY | O_CLOEXEC)) >= 0) {
		rc = 1;
		why = "the file could not be read";
		if (!fstat(fd, &st) && (!S_ISREG(st.st_mode) ||
					(uint64_t)st.st_size <= SP_CONFIG_MAX_BYTES)) {
			src_fd(&in, fd, cf->chunk);
			rc = load_inc(cf, &in, &why);
			src_free(&in);
		}
		close(fd);
		if (rc <= 0)
			return load_end(cf, rc, err, errlen);
	}
	rc = sp_config_read_file(cf->name, &buf, &len, err, errlen);
	if (rc)
		return rc;
	rc = load_items(cf, buf, len, why);
	if (rc > 0)
		rc = load_whole(cf, buf, len, why, err, errlen);
	else
		rc = load_end(cf, rc, err, errlen);
	free(buf);
	return rc;
}

void sp_config_file_set_chunk(struct sp_config_file *cf, size_t chunk)
{
	cf->chunk = chunk;
}
