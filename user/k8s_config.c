// SPDX-License-Identifier: Apache-2.0
/*
 * How to reach the API server: a kubeconfig file (--kubeconfig) or the
 * in-cluster service-account setup of a pod.
 *
 * kubeconfig is YAML; we read it with libyaml's document API and follow the
 * current-context to its cluster (server, certificate-authority[-data],
 * tls-server-name) and user (token, tokenFile, client-certificate[-data],
 * client-key[-data]). Exec and auth-provider plugins are not supported: they
 * would run arbitrary programs from a privileged daemon.
 */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "k8s.h"

#define errf sp_k8s_errf

/*
 * Caps checked before the document is loaded. A kubeconfig is a few KB
 * and nests 6 levels deep (exec args); libyaml's scanner is quadratic in
 * flow depth (80,000 nested "[" took 25 s) and its loader allocates per
 * level.
 */
#define KC_MAX_BYTES (16u << 20)
#define KC_MAX_DEPTH 64

void sp_k8s_config_free(struct sp_k8s_config *c)
{
	free(c->server);
	free(c->ca_file);
	free(c->ca_pem);
	free(c->token);
	free(c->token_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->tls_server_name);
	memset(c, 0, sizeof(*c));
}

static int b64val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

int sp_k8s_base64_decode(const char *in, char **out, size_t *outlen)
{
	size_t len = strlen(in), n = 0;
	unsigned int acc = 0;
	int bits = 0, pad = 0;
	char *buf;

	buf = malloc(len / 4 * 3 + 4);
	if (!buf)
		return -ENOMEM;
	for (; *in; in++) {
		int v;

		if (*in == ' ' || *in == '\n' || *in == '\r' || *in == '\t')
			continue;
		if (*in == '=') {
			pad++;
			continue;
		}
		v = b64val((unsigned char)*in);
		if (v < 0 || pad)
			goto bad;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (pad > 2 || bits >= 6)
		goto bad;
	buf[n] = 0;
	*out = buf;
	*outlen = n;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

/* ---- libyaml document helpers ---- */

static yaml_node_t *ymap_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);

		if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

/* A scalar's text, NULL if absent, not a scalar, or empty. */
static const char *yscalar(yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE || !n->data.scalar.length)
		return NULL;
	return (const char *)n->data.scalar.value;
}

/* In sequence `list`, the entry whose name is `name`; return its `field` mapping. */
static yaml_node_t *ynamed(yaml_document_t *d, yaml_node_t *root, const char *list,
			   const char *name, const char *field)
{
	yaml_node_t *seq = ymap_get(d, root, list);
	yaml_node_item_t *it;

	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(d, *it);
		const char *n = yscalar(ymap_get(d, e, "name"));

		if (n && !strcmp(n, name))
			return ymap_get(d, e, field);
	}
	return NULL;
}

/* A path from the kubeconfig: relative ones are relative to its directory. */
static int kc_path(char **dst, const char *dir, const char *p)
{
	if (!p)
		return 0;
	if (p[0] == '/')
		*dst = strdup(p);
	else if (asprintf(dst, "%s/%s", dir, p) < 0)
		*dst = NULL;
	return *dst ? 0 : -ENOMEM;
}

static int kc_data(char **dst, size_t *len, const char *b64, const char *path, const char *field,
		   char *err, size_t errlen)
{
	int ret;

	if (!b64)
		return 0;
	ret = sp_k8s_base64_decode(b64, dst, len);
	if (ret == -EINVAL)
		errf(err, errlen, "%s: %s is not valid base64", path, field);
	return ret;
}

static int kc_extract(struct sp_k8s_config *c, yaml_document_t *d, const char *path,
		      const char *dir, char *err, size_t errlen)
{
	yaml_node_t *root = yaml_document_get_root_node(d), *ctx, *cl, *user;
	const char *cur, *cname, *uname, *server, *v;
	size_t len;
	int ret;

	if (!root || root->type != YAML_MAPPING_NODE) {
		errf(err, errlen, "%s: not a kubeconfig (no top-level mapping)", path);
		return -EINVAL;
	}
	cur = yscalar(ymap_get(d, root, "current-context"));
	if (!cur) {
		errf(err, errlen, "%s: no current-context", path);
		return -EINVAL;
	}
	ctx = ynamed(d, root, "contexts", cur, "context");
	if (!ctx) {
		errf(err, errlen, "%s: context \"%s\" not found", path, cur);
		return -EINVAL;
	}
	cname = yscalar(ymap_get(d, ctx, "cluster"));
	uname = yscalar(ymap_get(d, ctx, "user"));
	cl = cname ? ynamed(d, root, "clusters", cname, "cluster") : NULL;
	if (!cl) {
		errf(err, errlen, "%s: cluster \"%s\" of context \"%s\" not found", path,
		     cname ? cname : "", cur);
		return -EINVAL;
	}
	server = yscalar(ymap_get(d, cl, "server"));
	if (!server || strncmp(server, "https://", 8)) {
		errf(err, errlen, "%s: cluster \"%s\": server must be an https:// URL", path, cname);
		return -EINVAL;
	}
	v = yscalar(ymap_get(d, cl, "insecure-skip-tls-verify"));
	if (v && !strcmp(v, "true")) {
		errf(err, errlen, "%s: cluster \"%s\": insecure-skip-tls-verify is not supported; give a CA",
		     path, cname);
		return -EINVAL;
	}
	c->server = strdup(server);
	if (!c->server)
		return -ENOMEM;
	/* Trailing slashes would double up with our paths. */
	len = strlen(c->server);
	while (len > 8 && c->server[len - 1] == '/')
		c->server[--len] = 0;
	ret = kc_path(&c->ca_file, dir, yscalar(ymap_get(d, cl, "certificate-authority")));
	if (!ret)
		ret = kc_data(&c->ca_pem, &c->ca_pem_len,
			      yscalar(ymap_get(d, cl, "certificate-authority-data")), path,
			      "certificate-authority-data", err, errlen);
	v = yscalar(ymap_get(d, cl, "tls-server-name"));
	if (!ret && v && !(c->tls_server_name = strdup(v)))
		ret = -ENOMEM;
	if (ret)
		return ret;

	user = uname ? ynamed(d, root, "users", uname, "user") : NULL;
	if (uname && !user) {
		errf(err, errlen, "%s: user \"%s\" of context \"%s\" not found", path, uname, cur);
		return -EINVAL;
	}
	if (ymap_get(d, user, "exec") || ymap_get(d, user, "auth-provider")) {
		errf(err, errlen, "%s: user \"%s\": exec and auth-provider credentials are not supported; use a token or client certificate",
		     path, uname);
		return -EINVAL;
	}
	v = yscalar(ymap_get(d, user, "token"));
	if (v && !(c->token = strdup(v)))
		return -ENOMEM;
	ret = kc_path(&c->token_file, dir, yscalar(ymap_get(d, user, "tokenFile")));
	if (!ret)
		ret = kc_path(&c->cert_file, dir, yscalar(ymap_get(d, user, "client-certificate")));
	if (!ret)
		ret = kc_path(&c->key_file, dir, yscalar(ymap_get(d, user, "client-key")));
	if (!ret)
		ret = kc_data(&c->cert_pem, &c->cert_pem_len,
			      yscalar(ymap_get(d, user, "client-certificate-data")), path,
			      "client-certificate-data", err, errlen);
	if (!ret)
		ret = kc_data(&c->key_pem, &c->key_pem_len,
			      yscalar(ymap_get(d, user, "client-key-data")), path,
			      "client-key-data", err, errlen);
	if (ret)
		return ret;
	if (!!(c->cert_file || c->cert_pem) != !!(c->key_file || c->key_pem)) {
		errf(err, errlen, "%s: user \"%s\": a client certificate needs its key and vice versa",
		     path, uname);
		return -EINVAL;
	}
	return 0;
}

/*
 * Event pass over f for the nesting depth. Returns 0, -EINVAL (too deep,
 * err says where) or -ENOMEM. A syntax error ends the pass with 0: the
 * loader that follows reports it.
 */
static int kc_scan(FILE *f, const char *path, char *err, size_t errlen)
{
	yaml_event_type_t type;
	yaml_parser_t p;
	yaml_event_t ev;
	int depth = 0, ret = 0;

	if (!yaml_parser_initialize(&p))
		return -ENOMEM;
	yaml_parser_set_input_file(&p, f);
	do {
		if (!yaml_parser_parse(&p, &ev))
			break;
		type = ev.type;
		if ((type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) &&
		    ++depth > KC_MAX_DEPTH) {
			errf(err, errlen, "%s:%zu:%zu: lists and mappings nested more than %d deep",
			     path, ev.start_mark.line + 1, ev.start_mark.column + 1, KC_MAX_DEPTH);
			ret = -EINVAL;
		} else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
			depth--;
		}
		yaml_event_delete(&ev);
	} while (!ret && type != YAML_STREAM_END_EVENT);
	yaml_parser_delete(&p);
	return ret;
}

int sp_k8s_config_kubeconfig(struct sp_k8s_config *c, const char *path, char *err, size_t errlen)
{
	struct stat st;
	yaml_parser_t parser;
	yaml_document_t doc;
	char *dircopy = NULL;
	FILE *f;
	int ret;

	memset(c, 0, sizeof(*c));
	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		errf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (!fstat(fileno(f), &st) && S_ISREG(st.st_mode) && (uint64_t)st.st_size > KC_MAX_BYTES) {
		errf(err, errlen, "%s: %llu bytes is larger than the %u MiB limit for a kubeconfig",
		     path, (unsigned long long)st.st_size, KC_MAX_BYTES >> 20);
		ret = -EFBIG;
		goto out_file;
	}
	ret = kc_scan(f, path, err, errlen);
	if (ret) {
		if (ret == -ENOMEM)
			errf(err, errlen, "%s: out of memory", path);
		goto out_file;
	}
	rewind(f);
	if (!yaml_parser_initialize(&parser)) {
		ret = -ENOMEM;
		goto out_file;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		errf(err, errlen, "%s:%zu:%zu: YAML error: %s", path, parser.problem_mark.line + 1,
		     parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown");
		ret = -EINVAL;
		goto out_parser;
	}
	dircopy = strdup(path);
	if (!dircopy) {
		ret = -ENOMEM;
		goto out_doc;
	}
	ret = kc_extract(c, &doc, path, dirname(dircopy), err, errlen);
	if (ret == -ENOMEM)
		errf(err, errlen, "%s: out of memory", path);
	if (ret)
		sp_k8s_config_free(c);
	free(dircopy);
out_doc:
	yaml_document_delete(&doc);
out_parser:
	yaml_parser_delete(&parser);
out_file:
	fclose(f);
	return ret;
}

int sp_k8s_config_incluster(struct sp_k8s_config *c, const char *sa_dir, char *err, size_t errlen)
{
	return sp_k8s_config_incluster_server(c, sa_dir, NULL, err, errlen);
}

int sp_k8s_config_incluster_server(struct sp_k8s_config *c, const char *sa_dir, const char *server,
				   char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	int ret;

	memset(c, 0, sizeof(*c));
	if (!sa_dir)
		sa_dir = SP_K8S_SA_DIR;
	if (server) {
		c->server = strdup(server);
		if (!c->server)
			return -ENOMEM;
	} else if (!host || !*host || !port || !*port) {
		errf(err, errlen, "not in a cluster: KUBERNETES_SERVICE_HOST/_PORT are not set "
				  "(use --k8s-api-server URL or --kubeconfig)");
		return -ENOENT;
	} else if (asprintf(&c->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s",
			    host, port) < 0) {
		/* (An IPv6 service host needs brackets in a URL.) */
		c->server = NULL;
		return -ENOMEM;
	}
	if (asprintf(&c->token_file, "%s/token", sa_dir) < 0) {
		c->token_file = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	if (asprintf(&c->ca_file, "%s/ca.crt", sa_dir) < 0) {
		c->ca_file = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	/* Fail early with a clear message; the token is re-read per request. */
	if (access(c->token_file, R_OK) || access(c->ca_file, R_OK)) {
		ret = -errno;
		errf(err, errlen, "in-cluster: cannot read %s or %s: %s", c->token_file, c->ca_file,
		     strerror(errno));
		goto fail;
	}
	return 0;
fail:
	sp_k8s_config_free(c);
	return ret;
}
