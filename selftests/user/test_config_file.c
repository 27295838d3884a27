// SPDX-License-Identifier: Apache-2.0
/*
 * The incremental reload of one config file (user/config_file.c): after
 * any edit, the model it keeps equals a whole parse of the new text
 * (sp_config_parse_buf, the reference), a bad text gives the whole parse's
 * message word for word and keeps the last good model, the Services it
 * names as changed are enough for sp_resolve_some to give what a full
 * resolve gives, and the fast path is taken when only items changed.
 *
 * The edits are random (a fixed seed per round, printed on failure):
 * items changed, added, removed, swapped, restyled; a duplicate VIP or
 * name between a kept and a changed item; a slice left without its
 * Service; a syntax error, an alias or a tab in one item; the header.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "config.h"
#include "config_file.h"
#include "model.h"
#include "resolve.h"

/* ---- Model equality ---- */

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool svc_eq(const struct sp_service *a, const struct sp_service *b)
{
	size_t i;

	if (!str_eq(a->ns, b->ns) || !str_eq(a->name, b->name) || a->type != b->type ||
	    a->headless != b->headless || a->n_cluster_ips != b->n_cluster_ips ||
	    a->n_external_ips != b->n_external_ips || a->n_lb_ips != b->n_lb_ips ||
	    a->n_ports != b->n_ports || a->etp_local != b->etp_local ||
	    a->itp_local != b->itp_local || a->affinity_client_ip != b->affinity_client_ip ||
	    a->affinity_timeout != b->affinity_timeout || !str_eq(a->proxy_name, b->proxy_name) ||
	    !str_eq(a->resource_version, b->resource_version) ||
	    a->health_check_node_port != b->health_check_node_port ||
	    a->n_src_ranges != b->n_src_ranges)
		return false;
	for (i = 0; i < a->n_cluster_ips; i++)
		if (sp_ip_cmp(&a->cluster_ips[i], &b->cluster_ips[i]))
			return false;
	for (i = 0; i < a->n_external_ips; i++)
		if (sp_ip_cmp(&a->external_ips[i], &b->external_ips[i]))
			return false;
	for (i = 0; i < a->n_lb_ips; i++)
		if (sp_ip_cmp(&a->lb_ips[i], &b->lb_ips[i]))
			return false;
	for (i = 0; i < a->n_src_ranges; i++)
		if (sp_cidr_cmp(&a->src_ranges[i], &b->src_ranges[i]))
			return false;
	for (i = 0; i < a->n_ports; i++) {
		const struct sp_svc_port *p = &a->ports[i], *q = &b->ports[i];

		if (!str_eq(p->name, q->name) || p->proto != q->proto || p->port != q->port ||
		    p->node_port != q->node_port || p->target_port != q->target_port ||
		    !str_eq(p->target_port_name, q->target_port_name))
			return false;
	}
	return true;
}

static bool slice_eq(const struct sp_slice *a, const struct sp_slice *b)
{
	size_t i;

	if (!str_eq(a->ns, b->ns) || !str_eq(a->name, b->name) ||
	    !str_eq(a->service_name, b->service_name) || a->family != b->family ||
	    a->n_ports != b->n_ports || a->n_endpoints != b->n_endpoints ||
	    !str_eq(a->resource_version, b->resource_version))
		return false;
	for (i = 0; i < a->n_ports; i++)
		if (!str_eq(a->ports[i].name, b->ports[i].name) ||
		    a->ports[i].proto != b->ports[i].proto || a->ports[i].port != b->ports[i].port)
			return false;
	for (i = 0; i < a->n_endpoints; i++) {
		const struct sp_endpoint *p = &a->endpoints[i], *q = &b->endpoints[i];

		if (sp_ip_cmp(&p->addr, &q->addr) || p->ready != q->ready ||
		    p->serving != q->serving || p->terminating != q->terminating ||
		    !str_eq(sp_ep_node(p), sp_ep_node(q)) ||
		    !str_eq(sp_ep_zone_hints(p), sp_ep_zone_hints(q)) ||
		    !str_eq(sp_ep_node_hints(p), sp_ep_node_hints(q)))
			return false;
	}
	return true;
}

/* Equal in every field, in the same order. */
static bool model_eq(const struct sp_model *a, const struct sp_model *b)
{
	size_t i;

	if (a->n_services != b->n_services || a->n_slices != b->n_slices)
		return false;
	for (i = 0; i < a->n_services; i++)
		if (!svc_eq(&a->services[i], &b->services[i]))
			return false;
	for (i = 0; i < a->n_slices; i++)
		if (!slice_eq(&a->slices[i], &b->slices[i]))
			return false;
	return true;
}

/* ---- A random config, as items ---- */

#define MAX_SVC 48
#define MAX_EP 4

struct tsvc {
	int id; /* the name: svc-<id> */
	int ns; /* 0: default (omitted), 1: team */
	int vip; /* clusterIP 10.96.0.<vip> */
	int port;
	int node_port; /* 0: none (type ClusterIP) */
	int style; /* 0: flow, 1: block, 2: block with anchors, comments, a blank line */
};

struct tslice {
	int id; /* the name: svc-<id>-x */
	int svc; /* serviceName: svc-<svc> */
	int ns;
	int eps[MAX_EP], n_eps; /* endpoint 10.244.<ep/200>.<ep%200+1> */
	int style;
};

struct tcfg {
	struct tsvc s[MAX_SVC];
	struct tslice l[MAX_SVC];
	int n_s, n_l;
	int col; /* the lists' column: 0 or 2 */
	bool slices_first;
	int header; /* 0: none, 1: a comment, 2: "---" */
};

static uint64_t rng;

static unsigned int rnd(unsigned int n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned int)(rng % n);
}

struct buf {
	char *p;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) bp(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap ? b->cap * 2 : 4096;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	b->len += (size_t)n;
}

static const char *ns_name(int ns)
{
	return ns ? "team" : "default";
}

static void put_svc(struct buf *b, const struct tcfg *c, const struct tsvc *s)
{
	const char *in = c->col ? "  " : "";

	if (s->style == 0) {
		bp(b, "%s- {name: svc-%d, namespace: %s,%s clusterIPs: [10.96.0.%d], ports: "
		      "[{port: %d",
		   in, s->id, ns_name(s->ns), s->node_port ? " type: NodePort," : "", s->vip,
		   s->port);
		if (s->node_port)
			bp(b, ", nodePort: %d", s->node_port);
		bp(b, "}]}\n");
		return;
	}
	bp(b, "%s- name: svc-%d\n", in, s->id);
	/* Anchors are allowed (aliases are not): an anchor per item. */
	if (s->ns || s->style == 2)
		bp(b, "%s  namespace: %s%s\n", in, s->style == 2 ? "&ns " : "", ns_name(s->ns));
	if (s->style == 2)
		bp(b, "%s  # the address\n\n", in);
	if (s->node_port)
		bp(b, "%s  type: NodePort\n", in);
	bp(b, "%s  clusterIP: 10.96.0.%d   # VIP\n", in, s->vip);
	bp(b, "%s  ports:\n%s    - port: %d\n", in, in, s->port);
	if (s->node_port)
		bp(b, "%s      nodePort: %d\n", in, s->node_port);
	if (s->style == 2)
		bp(b, "# after svc-%d\n", s->id);
}

static void put_slice(struct buf *b, const struct tcfg *c, const struct tslice *l)
{
	const char *in = c->col ? "  " : "";
	int i;

	if (l->style == 0) {
		bp(b, "%s- {name: svc-%d-x, namespace: %s, serviceName: svc-%d, addressType: IPv4, "
		      "endpoints: [",
		   in, l->id, ns_name(l->ns), l->svc);
		for (i = 0; i < l->n_eps; i++)
			bp(b, "%s{addresses: [10.244.%d.%d]}", i ? ", " : "", l->eps[i] / 200,
			   l->eps[i] % 200 + 1);
		bp(b, "]}\n");
		return;
	}
	bp(b, "%s- name: svc-%d-x\n%s  serviceName: svc-%d\n", in, l->id, in, l->svc);
	if (l->ns || l->style == 2)
		bp(b, "%s  namespace: %s\n", in, ns_name(l->ns));
	bp(b, "%s  addressType: IPv4\n%s  endpoints:\n", in, in);
	for (i = 0; i < l->n_eps; i++) {
		bp(b, "%s    - addresses:\n%s        - 10.244.%d.%d\n", in, in, l->eps[i] / 200,
		   l->eps[i] % 200 + 1);
		if (l->style == 2)
			bp(b, "%s      conditions: {ready: %s}\n", in, i % 2 ? "true" : "false");
	}
	if (l->style == 2)
		bp(b, "\n   # trailing comment of svc-%d-x\n", l->id);
}

static void render(const struct tcfg *c, struct buf *b)
{
	int i, pass;

	b->len = 0;
	bp(b, "%s", "");
	if (c->header == 1)
		bp(b, "# generated by test_config_file\n\n");
	else if (c->header == 2)
		bp(b, "---\n");
	for (pass = 0; pass < 2; pass++) {
		if ((pass == 0) != c->slices_first) {
			bp(b, "services:%s\n", c->header == 1 ? "   # the Services" : "");
			for (i = 0; i < c->n_s; i++)
				put_svc(b, c, &c->s[i]);
		} else {
			bp(b, "endpointSlices:\n");
			for (i = 0; i < c->n_l; i++)
				put_slice(b, c, &c->l[i]);
		}
	}
}

static int next_id = 1000, next_vip = 1;

static void new_svc(struct tcfg *c, bool with_slice)
{
	struct tsvc *s = &c->s[c->n_s++];
	struct tslice *l;
	int i;

	s->id = next_id++;
	s->ns = (int)rnd(2);
	s->vip = next_vip++ % 250 + 1;
	s->port = 80 + (int)rnd(3);
	s->node_port = rnd(4) ? 0 : 30000 + s->id;
	s->style = (int)rnd(3);
	if (!with_slice || c->n_l >= MAX_SVC)
		return;
	l = &c->l[c->n_l++];
	l->id = s->id;
	l->svc = s->id;
	l->ns = s->ns;
	l->n_eps = 1 + (int)rnd(MAX_EP);
	for (i = 0; i < l->n_eps; i++)
		l->eps[i] = s->id * 4 + i;
	l->style = (int)rnd(3);
}

static void random_cfg(struct tcfg *c, int n)
{
	memset(c, 0, sizeof(*c));
	c->col = rnd(2) ? 2 : 0;
	c->slices_first = !rnd(4);
	c->header = (int)rnd(3);
	while (c->n_s < n)
		new_svc(c, true);
}

/* ---- One step: the incremental load against the whole parse ---- */

struct run {
	struct sp_config_file *cf;
	char path[64]; /* what it is called; written and read on file steps */
	bool files; /* every other step through the file */
	struct sp_model good; /* the whole parse of the last good text */
	struct sp_desired prev; /* resolved from good */
	struct sp_resolve_opts ro;
	int steps, fast, whole, errors;
};

/*
 * Load text both ways and compare. fast: 1 the fast path must be taken,
 * 0 it must not, -1 either. Returns whether the text was good.
 */
static bool step(struct run *r, const char *text, size_t len, int fast, const char *what,
		 int *rc_out)
{
	char err_inc[512] = "", err_full[512] = "";
	struct sp_model full = { 0 };
	struct sp_config_file_stats st;
	struct sp_desired some = { 0 }, all = { 0 };
	const char *const *names;
	const char **ids = NULL;
	size_t n_names, n_ids = 0;
	int rc_inc, rc_full, rc;
	bool ok = true;

	r->steps++;
	rc_full = sp_config_parse_buf(text, len, r->path, &full, err_full, sizeof(err_full));
	if (r->files && r->steps % 2) {
		FILE *f = fopen(r->path, "w");

		if (!ASSERT_TRUE(f && fwrite(text, 1, len, f) == len && !fclose(f), "write"))
			return false;
		rc_inc = sp_config_file_load(r->cf, err_inc, sizeof(err_inc));
	} else {
		rc_inc = sp_config_file_parse_buf(r->cf, text, len, err_inc, sizeof(err_inc));
	}
	*rc_out = rc_full;
	if (!ASSERT_EQ(rc_inc, rc_full, what)) {
		fprintf(stderr, "  %s: full: %s\n  incremental: %s\n--- text:\n%s---\n", what,
			err_full, err_inc, text);
		ok = false;
		goto out;
	}
	if (rc_full) {
		r->errors++;
		if (!ASSERT_TRUE(!strcmp(err_inc, err_full), what)) {
			fprintf(stderr, "  %s: full: %s\n  incremental: %s\n", what, err_full,
				err_inc);
			ok = false;
		}
		/* The last good model stays. */
		if (!ASSERT_TRUE(model_eq(sp_config_file_model(r->cf), &r->good), what))
			ok = false;
		goto out;
	}
	sp_config_file_stats(r->cf, &st);
	st.incremental ? r->fast++ : r->whole++;
	if (fast >= 0 && !ASSERT_EQ(st.incremental, fast, what)) {
		fprintf(stderr, "  %s: whole parse because: %s\n", what,
			st.why_whole ? st.why_whole : "-");
		ok = false;
	}
	if (!ASSERT_TRUE(model_eq(sp_config_file_model(r->cf), &full), what)) {
		fprintf(stderr, "  %s: the models differ; text:\n%s---\n", what, text);
		ok = false;
		goto out;
	}
	/* The Services it names are enough: resolving only those gives the
	 * full resolve's state. */
	if (ASSERT_EQ(sp_resolve(&full, &r->ro, &all, NULL, NULL), 0, "resolve") &&
	    sp_config_file_changed(r->cf, &names, &n_names) == 0) {
		rc = sp_resolve_some(&full, &r->ro, &r->prev, names, n_names, &some, &ids, &n_ids,
				     NULL, NULL);
		free(ids);
		ids = NULL;
		if (ASSERT_EQ(rc, 0, "sp_resolve_some") &&
		    ASSERT_EQ(sp_desired_diff(&some, &all, &ids, &n_ids), 0, "diff")) {
			if (!ASSERT_EQ(n_ids, 0, what)) {
				fprintf(stderr, "  %s: %s differs after resolving %zu named\n",
					what, ids[0], n_names);
				ok = false;
			}
		}
		free(ids);
		sp_desired_free(&some);
	}
	sp_desired_free(&r->prev);
	r->prev = all;
	memset(&all, 0, sizeof(all));
	sp_model_free(&r->good);
	r->good = full;
	memset(&full, 0, sizeof(full));
out:
	sp_desired_free(&all);
	sp_model_free(&full);
	return ok;
}

static bool step_cfg(struct run *r, const struct tcfg *c, struct buf *b, int fast, const char *what)
{
	int rc;

	render(c, b);
	return step(r, b->p, b->len, fast, what, &rc) && ASSERT_EQ(rc, 0, what);
}

/*
 * chunk: the text read (or copied) in pieces of that many bytes (0: whole);
 * files: every other step through a file.
 */
static void run_init(struct run *r, size_t chunk, bool files)
{
	memset(r, 0, sizeof(*r));
	r->ro.node_name = "node-a";
	r->files = files;
	snprintf(r->path, sizeof(r->path), "/tmp/svcplane-test-config-file-%d.yaml", (int)getpid());
	if (sp_config_file_new(r->path, &r->cf))
		abort();
	sp_config_file_set_chunk(r->cf, chunk);
}

static void run_free(struct run *r)
{
	if (r->files)
		unlink(r->path);
	sp_config_file_free(r->cf);
	sp_model_free(&r->good);
	sp_desired_free(&r->prev);
}

/* Replace the nth (or the last) occurrence of find in the text by repl. */
static void text_edit(struct buf *b, const char *find, const char *repl, unsigned int nth)
{
	char *p = b->p, *hit = NULL;
	size_t fl = strlen(find), rl = strlen(repl);
	unsigned int i = 0;

	while ((p = strstr(p, find))) {
		hit = p;
		if (i++ == nth)
			break;
		p += fl;
	}
	if (!hit)
		return;
	if (b->len + rl + 1 > b->cap) {
		size_t off = (size_t)(hit - b->p);

		b->cap = b->len + rl + 1;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
		hit = b->p + off;
	}
	memmove(hit + rl, hit + fl, b->len - (size_t)(hit - b->p) - fl + 1);
	memcpy(hit, repl, rl);
	b->len = b->len - fl + rl;
}

/* ---- Tests ---- */

/*
 * Many random edits of items: the fast path each time, and always the
 * whole parse's result. Edits that make the text bad are tried on a copy
 * and then dropped (the file keeps its last good state, as the daemon).
 */
static void test_random_edits(void)
{
	struct buf b = { 0 };
	struct tcfg c, t;
	struct run r;
	int round, i, k, x, rc;
	bool ok = true;
	char what[96];

	for (round = 0; round < 10 && ok; round++) {
		rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(round + 1);
		/* Whole texts, and texts read in pieces down to a few bytes
		 * (lines and items cut anywhere), from memory and from a file. */
		run_init(&r, round % 3 == 0 ? 0 : round % 3 == 1 ? 1 + rnd(40) : 1 + rnd(400),
			 round % 2);
		random_cfg(&c, 6 + (int)rnd(20));
		snprintf(what, sizeof(what), "round %d: first parse", round);
		ok = step_cfg(&r, &c, &b, 0, what);
		for (i = 0; i < 60 && ok; i++) {
			t = c;
			k = c.n_s ? (int)rnd((unsigned int)c.n_s) : 0;
			x = (int)rnd(15);
			snprintf(what, sizeof(what), "round %d step %d edit %d", round, i, x);
			switch (x) {
			case 0: /* a port */
				if (c.n_s)
					t.s[k].port = t.s[k].port == 80 ? 81 : 80;
				break;
			case 1: /* an endpoint */
				if (c.n_l)
					t.l[k % c.n_l].eps[0] = 40000 + (int)rnd(1000);
				break;
			case 2: /* a Service and its slice added */
				if (c.n_s < MAX_SVC - 1)
					new_svc(&t, true);
				break;
			case 3: /* a Service and its slice removed */
				if (!c.n_s)
					break;
				for (int j = 0; j < t.n_l; j++) {
					if (t.l[j].svc != t.s[k].id)
						continue;
					memmove(&t.l[j], &t.l[j + 1], (t.n_l - j - 1) * sizeof(t.l[0]));
					t.n_l--;
					j--;
				}
				memmove(&t.s[k], &t.s[k + 1], (t.n_s - k - 1) * sizeof(t.s[0]));
				t.n_s--;
				break;
			case 4: /* two items swapped */
				if (c.n_s > 1) {
					struct tsvc tmp = t.s[k];
					int k2 = (int)rnd((unsigned int)c.n_s);

					t.s[k] = t.s[k2];
					t.s[k2] = tmp;
				}
				if (c.n_l > 1) {
					struct tslice tmp = t.l[0];

					t.l[0] = t.l[c.n_l - 1];
					t.l[c.n_l - 1] = tmp;
				}
				break;
			case 5: /* restyled: new text, same model */
				if (c.n_s)
					t.s[k].style = (t.s[k].style + 1) % 3;
				if (c.n_l)
					t.l[k % c.n_l].style = (t.l[k % c.n_l].style + 1) % 3;
				break;
			case 6: /* a duplicate VIP between a changed and a kept item: bad */
				if (c.n_s > 1) {
					t.s[k].vip = t.s[(k + 1) % c.n_s].vip;
					t.s[k].port = t.s[(k + 1) % c.n_s].port;
				}
				break;
			case 7: /* a duplicate name: bad */
				if (c.n_s > 1)
					t.s[k].id = t.s[(k + 1) % c.n_s].id;
				break;
			case 8: /* a Service renamed: its slice names nothing (bad) */
				if (c.n_s)
					t.s[k].id = next_id++;
				break;
			case 9: /* a Service removed, its slice kept: bad */
				if (c.n_s) {
					memmove(&t.s[k], &t.s[k + 1], (t.n_s - k - 1) * sizeof(t.s[0]));
					t.n_s--;
				}
				break;
			case 10: /* a slice moved to another Service */
				if (c.n_s && c.n_l)
					t.l[k % c.n_l].svc = t.s[k].id,
					t.l[k % c.n_l].ns = t.s[k].ns;
				break;
			case 11: /* a nodePort taken by two: bad */
				if (c.n_s > 1) {
					t.s[k].node_port = 31000;
					t.s[(k + 1) % c.n_s].node_port = 31000;
				}
				break;
			case 12: /* the header: the whole file is parsed */
				t.header = (t.header + 1) % 3;
				break;
			default: /* the same text again */
				break;
			}
			render(&t, &b);
			/* Text-level breakage of one item, now and then. */
			if (x == 13 && c.n_s) {
				static const char *const bad[][2] = {
					{ "clusterIP", "clusterIP: [" }, /* syntax */
					{ "port: ", "port: *ns " }, /* an alias */
					{ "serviceName", "\tserviceName" }, /* a tab */
					{ "ports", "portz" }, /* an unknown field */
					{ "10.244.", "10.2444." }, /* a bad address */
				};
				int v = (int)rnd(5);

				text_edit(&b, bad[v][0], bad[v][1], rnd(4));
			}
			/* Items only: the fast path, unless the header changed
			 * (or the text is broken: an error either way). */
			if (!step(&r, b.p, b.len, x == 12 ? 0 : x == 13 ? -1 : 1, what, &rc)) {
				fprintf(stderr, "  seed round %d, step %d\n", round, i);
				ok = false;
				break;
			}
			/* Good edits are kept; bad ones are dropped. */
			if (!rc)
				c = t;
		}
		if (ok && !ASSERT_TRUE(r.fast > r.steps / 3, "the fast path was taken for most edits")) {
			fprintf(stderr, "  round %d: %d steps, %d fast, %d whole, %d errors\n", round,
				r.steps, r.fast, r.whole, r.errors);
			ok = false;
		}
		if (getenv("TEST_VERBOSE"))
			fprintf(stderr, "  round %d: %d steps, %d fast, %d whole, %d errors\n",
				round, r.steps, r.fast, r.whole, r.errors);
		run_free(&r);
	}
	free(b.p);
}

/*
 * Services added one by one up to 300, then removed one by one: the index
 * of what the items claim fills up and is built again on the way (keys
 * that are gone keep their slots until then), and every step still gives
 * the whole parse's model, on the fast path.
 */
static void test_grow_and_shrink(void)
{
	struct buf b = { 0 };
	struct run r;
	int n, i, dir, rc;
	char what[64];
	bool ok = true;

	run_init(&r, 0, true); /* from a file, in 256 KiB pieces */
	for (dir = 1, n = 1; n >= 1 && ok; n += dir) {
		b.len = 0;
		bp(&b, "services:\n");
		/* Removing from the front: every key of the file changes place. */
		for (i = dir > 0 ? 0 : 300 - n; i < (dir > 0 ? n : 300); i++)
			bp(&b, "  - {name: s%d, clusterIP: 10.96.%d.%d, ports: [{port: 80, "
			       "nodePort: %d}], type: NodePort}\n",
			   i, i / 200, i % 200 + 1, 30000 + i);
		bp(&b, "endpointSlices:\n");
		for (i = dir > 0 ? 0 : 300 - n; i < (dir > 0 ? n : 300); i++)
			bp(&b, "  - {name: s%d-x, serviceName: s%d, addressType: IPv4, endpoints: "
			       "[{addresses: [10.244.%d.%d]}]}\n",
			   i, i, i / 200, i % 200 + 1);
		snprintf(what, sizeof(what), "%d Services (%s)", n, dir > 0 ? "adding" : "removing");
		ok = step(&r, b.p, b.len, r.steps ? 1 : 0, what, &rc) && ASSERT_EQ(rc, 0, what);
		/* Now and then a new Service on the VIP of the last one: the
		 * index must still know every key (a refused text). */
		if (ok && n % 25 == 0) {
			char dup[128];

			i = dir > 0 ? n - 1 : 299;
			snprintf(dup, sizeof(dup),
				 "  - {name: dup, clusterIP: 10.96.%d.%d, ports: [{port: 80}]}\n"
				 "endpointSlices:\n",
				 i / 200, i % 200 + 1);
			text_edit(&b, "endpointSlices:\n", dup, 0);
			snprintf(what, sizeof(what), "%d Services and a duplicate VIP", n);
			ok = step(&r, b.p, b.len, -1, what, &rc) && ASSERT_NEQ(rc, 0, what);
		}
		if (n == 300)
			dir = -1;
	}
	run_free(&r);
	free(b.p);
}

/*
 * A first load of text (a whole load: by items when the scan can cut it,
 * config_file.c load_items) gives what the whole parse gave: rc, the
 * message word for word, the model.
 */
static bool first_load_same(const char *text, size_t len, int rc_full,
			    const struct sp_model *full, const char *err_full, const char *what)
{
	struct sp_config_file *cf = NULL;
	char err[512];
	bool ok = true;
	int rc;

	if (!ASSERT_EQ(sp_config_file_new("t.yaml", &cf), 0, "new"))
		return false;
	rc = sp_config_file_parse_buf(cf, text, len, err, sizeof(err));
	ok &= ASSERT_EQ(rc, rc_full, what);
	if (rc && rc == rc_full && !ASSERT_TRUE(!strcmp(err, err_full), what)) {
		fprintf(stderr, "  %s, first load: \"%s\", whole parse: \"%s\"\n", what, err,
			err_full);
		ok = false;
	}
	if (!rc && !rc_full)
		ok &= ASSERT_TRUE(model_eq(sp_config_file_model(cf), full), what);
	sp_config_file_free(cf);
	return ok;
}

/*
 * A first load of a large file parses its items on several threads: the
 * same model as the whole parse, and, when an item or a check across items
 * fails (in either thread's share), the whole parse's message.
 */
static void test_first_load_threads(void)
{
	enum { NS = 800 }; /* 1,600 items: above ITEMS_MIN_PARALLEL */
	static const struct {
		const char *name;
		const char *find, *repl; /* the nth occurrence of find replaced */
		unsigned int nth;
		bool bad;
	} cases[] = {
		{ "good", "", "", 0, false },
		/* items parsed one at a time then (config_file.c ITEMS_GRAIN) */
		{ "good, not ASCII", "ports: [{port: 80}]}\n", "ports: [{port: 80}]} # caf\xc3\xa9\n",
		  7, false },
		{ "a VIP twice, far apart", "clusterIP: 10.96.3.4,", "clusterIP: 10.96.0.1,", 0, true },
		{ "a Service name twice", "{name: s799,", "{name: s0,", 0, true },
		{ "a slice name twice", "{name: s700-x,", "{name: s5-x,", 0, true },
		{ "a slice without its Service", "serviceName: s650}", "serviceName: nope}", 0, true },
		{ "a bad port in the last Service", "ports: [{port: 80}]}", "ports: [{port: x}]}",
		  NS - 1, true },
		{ "a syntax error in a slice", "[{addresses: [", "[{addresses: [[", NS / 2, true },
		{ "a syntax error, not ASCII", "[{addresses: [", "[{addresses: [\xc3\xa9[", NS / 3,
		  true },
		/* between the items: parsed on its own (found by fuzz_config) */
		{ "a control character in a comment", "services:\n", "# a \x01\nservices:\n", 0,
		  true },
	};
	struct buf b = { 0 };
	struct sp_config_file_stats st;
	struct sp_model full = { 0 };
	struct sp_config_file *cf;
	char err[512], err_full[512];
	size_t c;
	int i, rc, rc_full;
	bool ok;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		b.len = 0;
		bp(&b, "services:\n");
		for (i = 0; i < NS; i++)
			bp(&b, "  - {name: s%d, clusterIP: 10.96.%d.%d, ports: [{port: 80}]}\n", i,
			   i / 200, i % 200 + 1);
		bp(&b, "endpointSlices:\n");
		for (i = 0; i < NS; i++)
			bp(&b, "  - {name: s%d-x, addressType: IPv4, endpoints: [{addresses: "
			       "[10.244.%d.%d]}], serviceName: s%d}\n",
			   i, i / 200, i % 200 + 1, i);
		if (*cases[c].find)
			text_edit(&b, cases[c].find, cases[c].repl, cases[c].nth);
		rc_full = sp_config_parse_buf(b.p, b.len, "t.yaml", &full, err_full,
					      sizeof(err_full));
		ok = ASSERT_EQ(rc_full != 0, cases[c].bad, cases[c].name);
		cf = NULL;
		if (!ASSERT_EQ(sp_config_file_new("t.yaml", &cf), 0, "new"))
			break;
		rc = sp_config_file_parse_buf(cf, b.p, b.len, err, sizeof(err));
		ok &= ASSERT_EQ(rc, rc_full, cases[c].name);
		if (rc && rc == rc_full && !ASSERT_TRUE(!strcmp(err, err_full), cases[c].name)) {
			fprintf(stderr, "  first load: \"%s\", whole parse: \"%s\"\n", err,
				err_full);
			ok = false;
		}
		if (!rc && !rc_full) {
			ok &= ASSERT_TRUE(model_eq(sp_config_file_model(cf), &full), cases[c].name);
			sp_config_file_stats(cf, &st);
			ok &= ASSERT_EQ(st.items, 2 * NS, "items");
			if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
				ok &= ASSERT_NEQ(st.threads, 1, "items parsed on several threads");
			/* and it is remembered: a change is incremental */
			text_edit(&b, "10.244.0.7]", "10.244.0.8]", 0);
			ok &= ASSERT_EQ(sp_config_file_parse_buf(cf, b.p, b.len, err, sizeof(err)),
					0, "a change");
			sp_config_file_stats(cf, &st);
			ok &= ASSERT_TRUE(st.incremental, "the change is parsed alone");
		}
		sp_model_free(&full);
		sp_config_file_free(cf);
		if (!ok)
			break;
	}
	free(b.p);
}

/* The fast path when it should be, and the whole parse when it must be. */
static void test_fast_path(void)
{
#define A1 "  - {name: a-1, serviceName: a, addressType: IPv4, endpoints: [{addresses: [10.0.0.1]}]}\n"
#define B1 "  - {name: b-1, serviceName: b, addressType: IPv4, endpoints: [{addresses: [10.0.0.2]}]}\n"
	static const char base[] = "# header\n"
				   "services:\n"
				   "  - {name: a, clusterIP: 10.96.0.1, ports: [{port: 80}]}\n"
				   "  - name: b\n"
				   "    clusterIP: 10.96.0.2\n"
				   "    ports:\n"
				   "      - port: 80\n"
				   "endpointSlices:\n" A1 B1;
	static const struct {
		const char *name;
		const char *find, *repl; /* base with find replaced by repl */
		bool bad; /* the whole parse refuses the text */
		bool fast; /* the fast path (for a good text) */
		const char *changed; /* the Services it names, comma-separated */
		const char *find2, *repl2; /* and then this one too */
	} cases[] = {
		{ "nothing changed", "", "", false, true, "" },
		{ "one endpoint", "10.0.0.2]", "10.0.0.3]", false, true, "default/b" },
		{ "one port", "      - port: 80", "      - port: 81", false, true, "default/b" },
		{ "a comment inside an item", "    clusterIP: 10.96.0.2\n",
		  "    clusterIP: 10.96.0.2 # the VIP\n", false, true, "default/b" },
		{ "a Service added", "endpointSlices:\n",
		  "  - {name: c, clusterIP: 10.96.0.3, ports: [{port: 80}]}\nendpointSlices:\n",
		  false, true, "default/c" },
		{ "a slice removed", A1, "", false, true, "default/a" },
		{ "two slices swapped", A1 B1, B1 A1, false, true, "default/a" },
		{ "a Service removed with its slice",
		  "  - {name: a, clusterIP: 10.96.0.1, ports: [{port: 80}]}\n", "", false, true,
		  "default/a", A1, "" },
		{ "a VIP taken from a kept item", "10.96.0.2", "10.96.0.1", true, false, NULL },
		{ "a slice whose Service went", "  - {name: a, clusterIP: 10.96.0.1, ports: "
						"[{port: 80}]}\n",
		  "", true, false, NULL },
		{ "a syntax error in one item", "[{port: 80}]}", "[{port: 80}}", true, false, NULL },
		{ "an alias in one item", "      - port: 80", "      - port: *p", true, false, NULL },
		{ "the header", "# header\n", "# header, edited\n", false, false, NULL },
		{ "a leading ---", "# header\n", "---\n# header\n", false, false, NULL },
		{ "a third top-level key", "# header\n", "extra: 1\n", true, false, NULL },
		{ "flow style at the top", "endpointSlices:\n" A1 B1,
		  "endpointSlices: [{name: a-1, serviceName: a, addressType: IPv4}]\n", false,
		  false, NULL },
		{ "a second document", "# header\n", "# header\n{}\n---\n", true, false, NULL },
		{ "a continuation at the item's column",
		  "{name: a, clusterIP: 10.96.0.1, ports: [{port: 80}]}",
		  "{name: a, clusterIP: 10.96.0.1,\n  ports: [{port: 80}]}", false, false, NULL },
	};
#undef A1
#undef B1
	char err[512], err_full[512], text[2048], list[256];
	const char *const *names;
	size_t i, n, j;
	bool ok;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_config_file_stats st;
		struct sp_config_file *cf = NULL;
		struct sp_model full = { 0 }, before = { 0 };
		const char *what = cases[i].name, *hit;
		int rc, rc_full;

		if (!sp_test_selected(what))
			continue;
		ok = true;
		hit = *cases[i].find ? strstr(base, cases[i].find) : base;
		if (!ASSERT_TRUE(hit != NULL, what) ||
		    !ASSERT_EQ(sp_config_file_new("t.yaml", &cf), 0, "new") ||
		    !ASSERT_EQ(sp_config_file_parse_buf(cf, base, strlen(base), err, sizeof(err)),
			       0, "base") ||
		    !ASSERT_EQ(sp_config_parse_buf(base, strlen(base), "t.yaml", &before, err,
						   sizeof(err)),
			       0, "base")) {
			ok = false;
			goto next;
		}
		snprintf(text, sizeof(text), "%.*s%s%s", (int)(hit - base), base, cases[i].repl,
			 hit + strlen(cases[i].find));
		if (cases[i].find2 && (hit = strstr(text, cases[i].find2))) {
			char t2[sizeof(text)];

			snprintf(t2, sizeof(t2), "%.*s%s%s", (int)(hit - text), text,
				 cases[i].repl2, hit + strlen(cases[i].find2));
			memcpy(text, t2, sizeof(text));
		}
		rc_full = sp_config_parse_buf(text, strlen(text), "t.yaml", &full, err_full,
					      sizeof(err_full));
		ok &= first_load_same(text, strlen(text), rc_full, &full, err_full, what);
		rc = sp_config_file_parse_buf(cf, text, strlen(text), err, sizeof(err));
		ok &= ASSERT_EQ(rc_full != 0, cases[i].bad, what);
		ok &= ASSERT_EQ(rc, rc_full, what);
		if (rc) {
			if (!ASSERT_TRUE(!strcmp(err, err_full), what)) {
				fprintf(stderr, "  %s: \"%s\", whole parse: \"%s\"\n", what, err,
					err_full);
				ok = false;
			}
			ok &= ASSERT_TRUE(model_eq(sp_config_file_model(cf), &before),
					  "the last good model stays");
			goto next;
		}
		ok &= ASSERT_TRUE(model_eq(sp_config_file_model(cf), &full), what);
		sp_config_file_stats(cf, &st);
		if (!ASSERT_EQ(st.incremental, cases[i].fast, what)) {
			fprintf(stderr, "  %s: whole parse because: %s\n", what,
				st.why_whole ? st.why_whole : "-");
			ok = false;
		}
		if (!cases[i].fast) {
			ok &= ASSERT_EQ(sp_config_file_changed(cf, &names, &n), 1, what);
			goto next;
		}
		if (!ASSERT_EQ(sp_config_file_changed(cf, &names, &n), 0, what)) {
			ok = false;
			goto next;
		}
		list[0] = '\0';
		for (j = 0; j < n; j++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 j ? "," : "", names[j]);
		if (!ASSERT_TRUE(!strcmp(list, cases[i].changed), what)) {
			fprintf(stderr, "  %s: named \"%s\", expected \"%s\"\n", what, list,
				cases[i].changed);
			ok = false;
		}
		/* The parse is per item: one item's cost, not the file's. */
		ok &= ASSERT_LE(st.parsed, 2, what);
next:
		sp_model_free(&full);
		sp_model_free(&before);
		sp_config_file_free(cf);
		sp_test_report(what, ok);
	}
}

int main(void)
{
	test_fast_path(); /* one line per case */
	RUN_TEST(test_random_edits);
	RUN_TEST(test_grow_and_shrink);
	RUN_TEST(test_first_load_threads);
	return sp_test_exit();
}
