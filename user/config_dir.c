// SPDX-License-Identifier: Apache-2.0
/*
 * A directory of config files (config_dir.h). Operators who generate their
 * configs write one file per application or team; a change then touches
 * one file, and only that file is read and parsed again: the cost of a
 * change follows the file, not the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "config_dir.h"

struct cd_file {
	char *name; /* the file name inside the directory */
	struct stat st; /* when last parsed (ino, size, mtime compared) */
	struct sp_config_part *good; /* last good state, or NULL */
	bool bad; /* the content at st was refused */
};

struct sp_config_dir {
	char *dir;
	struct cd_file *f; /* sorted by name */
	size_t n;
	struct sp_model merged; /* arrays of shallow copies: the parts own the content */
	/* "namespace/name" of the Services the last scan's changes touch, sorted */
	char **changed;
	size_t n_changed, cap_changed;
	bool changed_nomem; /* the list is incomplete */
};

int sp_config_dir_new(const char *dir, struct sp_config_dir **out)
{
	struct sp_config_dir *cd = calloc(1, sizeof(*cd));

	if (!cd || !(cd->dir = strdup(dir))) {
		free(cd);
		return -ENOMEM;
	}
	*out = cd;
	return 0;
}

static void files_free(struct cd_file *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		sp_config_part_free(f[i].good);
		free(f[i].name);
	}
	free(f);
}

static void changed_clear(struct sp_config_dir *cd)
{
	while (cd->n_changed)
		free(cd->changed[--cd->n_changed]);
	cd->changed_nomem = false;
}

/* Add "ns/name" to the changed list (duplicates are removed later). */
static void changed_add(struct sp_config_dir *cd, const char *ns, const char *name)
{
	char *str;

	if (cd->n_changed == cd->cap_changed) {
		size_t cap = cd->cap_changed ? cd->cap_changed * 2 : 64;
		char **v = reallocarray(cd->changed, cap, sizeof(*v));

		if (!v) {
			cd->changed_nomem = true;
			return;
		}
		cd->changed = v;
		cd->cap_changed = cap;
	}
	if (asprintf(&str, "%s/%s", ns, name) < 0) {
		cd->changed_nomem = true;
		return;
	}
	cd->changed[cd->n_changed++] = str;
}

/* The Services a part's content concerns: its own, and those its slices name. */
static void changed_add_part(struct sp_config_dir *cd, const struct sp_config_part *p)
{
	const struct sp_model *m = p ? sp_config_part_model(p) : NULL;
	size_t i;

	for (i = 0; m && i < m->n_services; i++)
		changed_add(cd, m->services[i].ns, m->services[i].name);
	for (i = 0; m && i < m->n_slices; i++)
		changed_add(cd, m->slices[i].ns, m->slices[i].service_name);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int sp_config_dir_changed(const struct sp_config_dir *cd, const char *const **names, size_t *n)
{
	if (cd->changed_nomem)
		return -ENOMEM;
	*names = (const char *const *)cd->changed;
	*n = cd->n_changed;
	return 0;
}

void sp_config_dir_free(struct sp_config_dir *cd)
{
	if (!cd)
		return;
	changed_clear(cd);
	free(cd->changed);
	files_free(cd->f, cd->n);
	free(cd->merged.services);
	free(cd->merged.slices);
	free(cd->dir);
	free(cd);
}

const struct sp_model *sp_config_dir_model(const struct sp_config_dir *cd)
{
	return &cd->merged;
}

size_t sp_config_dir_n_files(const struct sp_config_dir *cd)
{
	return cd->n;
}

size_t sp_config_dir_n_bad(const struct sp_config_dir *cd)
{
	size_t i, n = 0;

	for (i = 0; i < cd->n; i++)
		n += cd->f[i].bad;
	return n;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the directory's *.yaml files, sorted. 0 or -errno with err. */
static int list_dir(const char *dir, char ***out, size_t *n_out, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL, **nv;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open the directory: %s", dir, strerror(-rc));
		return rc;
	}
	while ((errno = 0, e = readdir(d))) {
		/* Editors' and tools' temporary files start with a dot: a file
		 * is read once it is renamed into place. */
		if (e->d_name[0] == '.' || fnmatch("*.yaml", e->d_name, 0))
			continue;
		if (n == SP_CONFIG_DIR_MAX_FILES) {
			snprintf(err, errlen, "%s: more than %u *.yaml files", dir,
				 SP_CONFIG_DIR_MAX_FILES);
			rc = -E2BIG;
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nv = reallocarray(v, cap, sizeof(*v));
			if (!nv)
				goto nomem;
			v = nv;
		}
		if (!(v[n] = strdup(e->d_name)))
			goto nomem;
		n++;
	}
	if (errno) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot read the directory: %s", dir, strerror(-rc));
	}
	goto out;
nomem:
	snprintf(err, errlen, "%s: out of memory", dir);
	rc = -ENOMEM;
out:
	closedir(d);
	if (rc) {
		while (n)
			free(v[--n]);
		free(v);
		return rc;
	}
	if (n)
		qsort(v, n, sizeof(*v), name_cmp);
	*out = v;
	*n_out = n;
	return 0;
}

/* A file in the scan: where it stands and what it would now contribute. */
struct cand {
	struct cd_file f; /* the new entry (name owned; good = the part in use) */
	struct sp_config_part *fresh; /* parsed in this scan, not yet accepted */
	struct cd_file *old; /* the entry of the previous scan, or NULL */
};

static void report_line(sp_warn_fn report, void *arg, char *buf, size_t len, const char *msg,
			const struct cd_file *old)
{
	snprintf(buf, len, "%s; %s", msg,
		 old && old->good ? "this file's last good state is kept" :
				    "the file is left out until it is fixed");
	if (report)
		report(arg, buf);
}

/* Rebuild the merged model from the files in use. 0 or -ENOMEM. */
static int merge(struct sp_config_dir *cd)
{
	size_t i, ns = 0, nl = 0;
	struct sp_service *s;
	struct sp_slice *l;

	for (i = 0; i < cd->n; i++) {
		if (!cd->f[i].good)
			continue;
		ns += sp_config_part_model(cd->f[i].good)->n_services;
		nl += sp_config_part_model(cd->f[i].good)->n_slices;
	}
	s = calloc(ns ? ns : 1, sizeof(*s));
	l = calloc(nl ? nl : 1, sizeof(*l));
	if (!s || !l) {
		free(s);
		free(l);
		return -ENOMEM;
	}
	free(cd->merged.services);
	free(cd->merged.slices);
	cd->merged = (struct sp_model){ .services = s, .slices = l };
	for (i = 0; i < cd->n; i++) {
		const struct sp_model *m;

		if (!cd->f[i].good)
			continue;
		m = sp_config_part_model(cd->f[i].good);
		if (m->n_services)
			memcpy(s + cd->merged.n_services, m->services, m->n_services * sizeof(*s));
		if (m->n_slices)
			memcpy(l + cd->merged.n_slices, m->slices, m->n_slices * sizeof(*l));
		cd->merged.n_services += m->n_services;
		cd->merged.n_slices += m->n_slices;
	}
	return 0;
}

/*
 * Check the parts in use against each other. The files kept from the last
 * scan went together then, so they come first and a duplicate is always
 * blamed on a file parsed in this scan, which falls back to its last good
 * state; then again, until the rest goes together (each round takes one
 * file out of the fresh ones, so it ends).
 */
static int cross_check(struct cand *c, size_t n, bool strict, sp_warn_fn report, void *arg,
		       char *err, size_t errlen)
{
	struct sp_config_part **parts = calloc(n ? n : 1, sizeof(*parts));
	size_t *who = calloc(n ? n : 1, sizeof(*who));
	char msg[768];
	size_t i, k, bad;
	int rc = 0;

	if (!parts || !who) {
		snprintf(err, errlen, "checking the config files: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		k = 0;
		for (i = 0; i < n; i++)
			if (c[i].f.good && !c[i].fresh)
				who[k] = i, parts[k++] = c[i].f.good;
		for (i = 0; i < n; i++)
			if (c[i].fresh)
				who[k] = i, parts[k++] = c[i].fresh;
		rc = sp_config_parts_check(parts, k, &bad, msg, sizeof(msg));
		if (rc != -EINVAL)
			break;
		i = who[bad];
		if (strict || !c[i].fresh) { /* the latter cannot happen, see above */
			snprintf(err, errlen, "%s", msg);
			break;
		}
		report_line(report, arg, err, errlen, msg, c[i].old);
		sp_config_part_free(c[i].fresh);
		c[i].fresh = NULL;
		c[i].f.bad = true;
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s", msg);
out:
	free(parts);
	free(who);
	return rc;
}

int sp_config_dir_scan(struct sp_config_dir *cd, bool strict, sp_warn_fn report, void *arg,
		       char *err, size_t errlen)
{
	char **names = NULL, path[4096], msg[768];
	struct cand *c = NULL;
	size_t n = 0, i, j = 0;
	bool changed;
	int rc;

	rc = list_dir(cd->dir, &names, &n, err, errlen);
	if (rc)
		return rc;
	c = calloc(n ? n : 1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "%s: out of memory", cd->dir);
		rc = -ENOMEM;
		goto out;
	}
	changed = n != cd->n;
	for (i = 0; i < n; i++) {
		struct cand *x = &c[i];
		int r;

		x->f.name = names[i];
		names[i] = NULL;
		/* Both lists are sorted: walk the old one alongside. */
		while (j < cd->n && strcmp(cd->f[j].name, x->f.name) < 0)
			j++;
		if (j < cd->n && !strcmp(cd->f[j].name, x->f.name))
			x->old = &cd->f[j];
		else
			changed = true;
		snprintf(path, sizeof(path), "%s/%s", cd->dir, x->f.name);
		if (stat(path, &x->f.st)) {
			/* Gone since the listing: as if it was not there. */
			memset(&x->f.st, 0, sizeof(x->f.st));
			changed = true;
			continue;
		}
		if (x->old && same_file(&x->old->st, &x->f.st)) {
			x->f.good = x->old->good;
			x->f.bad = x->old->bad;
			continue;
		}
		changed = true;
		x->f.good = x->old ? x->old->good : NULL;
		r = S_ISREG(x->f.st.st_mode) ? sp_config_part_load(path, &x->fresh, msg, sizeof(msg))
					     : -EINVAL;
		if (r == -EINVAL && !S_ISREG(x->f.st.st_mode))
			snprintf(msg, sizeof(msg), "%.700s: not a regular file", path);
		if (r == -ENOMEM) {
			snprintf(err, errlen, "%s", msg);
			rc = r;
			goto out;
		}
		if (r && strict) {
			snprintf(err, errlen, "%s", msg);
			rc = -EINVAL;
			goto out;
		}
		if (r) {
			report_line(report, arg, err, errlen, msg, x->old);
			x->f.bad = true;
		}
	}
	if (!changed)
		goto out;
	rc = cross_check(c, n, strict, report, arg, err, errlen);
	if (rc)
		goto out;
	/* What the change touches: the Services of every part that goes (old
	 * parts replaced, files removed) and of every part that comes. */
	changed_clear(cd);
	for (i = 0, j = 0; i < cd->n; i++) {
		while (j < n && strcmp(c[j].f.name, cd->f[i].name) < 0)
			j++;
		if (!cd->f[i].good)
			continue;
		if (j < n && c[j].old == &cd->f[i] && c[j].f.good == cd->f[i].good && !c[j].fresh)
			continue; /* kept as it was */
		changed_add_part(cd, cd->f[i].good);
	}
	for (i = 0; i < n; i++)
		if (c[i].fresh)
			changed_add_part(cd, c[i].fresh);
	if (cd->n_changed) {
		size_t k = 0;

		qsort(cd->changed, cd->n_changed, sizeof(*cd->changed), str_cmp);
		for (i = 0; i < cd->n_changed; i++) {
			if (k && !strcmp(cd->changed[k - 1], cd->changed[i]))
				free(cd->changed[i]);
			else
				cd->changed[k++] = cd->changed[i];
		}
		cd->n_changed = k;
	}
	/* Accept: fresh parts replace the old ones, which go with the old list. */
	for (i = 0; i < n; i++) {
		if (!c[i].fresh)
			continue;
		c[i].f.good = c[i].fresh;
		c[i].f.bad = false;
		c[i].fresh = NULL;
	}
	for (i = 0; i < n; i++)
		if (c[i].old && c[i].old->good == c[i].f.good)
			c[i].old->good = NULL; /* now owned by the new list */
	files_free(cd->f, cd->n);
	cd->f = calloc(n ? n : 1, sizeof(*cd->f));
	if (!cd->f) {
		/* Nothing owns the parts any more: free them, start from empty. */
		for (i = 0; i < n; i++) {
			sp_config_part_free(c[i].f.good);
			free(c[i].f.name);
		}
		cd->n = 0;
		free(c);
		c = NULL;
		merge(cd);
		snprintf(err, errlen, "%s: out of memory", cd->dir);
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		cd->f[i] = c[i].f;
		c[i].f.name = NULL;
	}
	cd->n = n;
	rc = merge(cd);
	if (rc)
		snprintf(err, errlen, "%s: out of memory", cd->dir);
	else
		rc = 1;
out:
	for (i = 0; c && i < n; i++) {
		sp_config_part_free(c[i].fresh);
		free(c[i].f.name);
	}
	free(c);
	for (i = 0; i < n; i++)
		free(names ? names[i] : NULL);
	free(names);
	return rc;
}
