// SPDX-License-Identifier: Apache-2.0
/*
 * A directory of config files (user/config_dir.c): files added, changed,
 * removed; a bad file keeps its last good state and is reported; a file
 * that claims what another file has is refused; unchanged files are not
 * parsed again (their model is the very same memory).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "config_dir.h"
#include "model.h"

static char dir[] = "/tmp/svcplane-test-config-dir-XXXXXX";
static char reports[4096];
static int n_reports;

static void report(void *arg, const char *msg)
{
	size_t len = strlen(reports);

	(void)arg;
	n_reports++;
	snprintf(reports + len, sizeof(reports) - len, "%s\n", msg);
}

/* Write a file of the directory the way operators should: a temporary
 * name starting with a dot (ignored by the scan), then a rename. */
static bool put(const char *name, const char *text)
{
	char tmp[256], path[256];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(tmp, "w");
	if (!ASSERT_TRUE(f != NULL, "create a file"))
		return false;
	fputs(text, f);
	fclose(f);
	return ASSERT_EQ(rename(tmp, path), 0, "rename it into place");
}

static void drop(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ASSERT_EQ(unlink(path), 0, "remove a file");
}

/* One Service NAME on VIP with a slice of endpoint EP. */
#define SVC(name, vip, ep)                                                                         \
	"services:\n"                                                                              \
	"  - {name: " name ", clusterIP: " vip ", ports: [{name: http, port: 80}]}\n"               \
	"endpointSlices:\n"                                                                        \
	"  - {name: " name "-1, serviceName: " name ", addressType: IPv4,\n"                       \
	"     ports: [{name: http, port: 8080}], endpoints: [{addresses: [" ep "]}]}\n"

static const struct sp_service *find_svc(const struct sp_model *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n_services; i++)
		if (!strcmp(m->services[i].name, name))
			return &m->services[i];
	return NULL;
}

static const struct sp_slice *find_slice(const struct sp_model *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n_slices; i++)
		if (!strcmp(m->slices[i].name, name))
			return &m->slices[i];
	return NULL;
}

/* The Services the last scan's changes touch, comma-separated, must be want. */
static void expect_changed(struct sp_config_dir *cd, const char *want)
{
	const char *const *names;
	char got[256] = "";
	size_t n, i, len = 0;

	if (!ASSERT_EQ(sp_config_dir_changed(cd, &names, &n), 0, "changed Services"))
		return;
	for (i = 0; i < n && len < sizeof(got); i++)
		len += snprintf(got + len, sizeof(got) - len, "%s%s", i ? "," : "", names[i]);
	ASSERT_STREQ(got, want, "the Services the change touches");
}

static int scan(struct sp_config_dir *cd, bool strict, char *err, size_t errlen)
{
	reports[0] = '\0';
	n_reports = 0;
	return sp_config_dir_scan(cd, strict, report, NULL, err, errlen);
}

static void test_dir(void)
{
	struct sp_config_dir *cd = NULL;
	const struct sp_model *m;
	const struct sp_slice *sl;
	const char *a_name;
	char err[1024], ip[64];

	if (!ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp"))
		return;
	if (!put("a.yaml", SVC("a", "10.96.0.1", "10.244.0.1")) ||
	    !put("b.yaml", SVC("b", "10.96.0.2", "10.244.0.2")) ||
	    /* A slice whose Service is in another file. */
	    !put("c.yaml", "endpointSlices:\n  - {name: a-2, serviceName: a, addressType: IPv4,\n"
			   "     ports: [{name: http, port: 8080}], endpoints: [{addresses: [10.244.0.9]}]}\n") ||
	    !put("notes.txt", "not yaml: [") || !put(".hidden.yaml", "not yaml: ["))
		goto out;
	if (!ASSERT_EQ(sp_config_dir_new(dir, &cd), 0, "new"))
		goto out;

	ASSERT_EQ(scan(cd, true, err, sizeof(err)), 1, "first scan: a model");
	m = sp_config_dir_model(cd);
	ASSERT_EQ(m->n_services, 2, "Services of a.yaml and b.yaml");
	ASSERT_EQ(m->n_slices, 3, "slices, with c.yaml's for a Service of a.yaml");
	ASSERT_EQ(sp_config_dir_n_files(cd), 3, "*.yaml files, not notes.txt or .hidden.yaml");
	ASSERT_EQ(scan(cd, false, err, sizeof(err)), 0, "nothing changed");
	if (!ASSERT_TRUE(find_svc(m, "a") != NULL, "Service a"))
		goto out;
	a_name = find_svc(m, "a")->name;

	/* b.yaml changes: only b is parsed again. */
	if (!put("b.yaml", SVC("b", "10.96.0.2", "10.244.0.22")))
		goto out;
	ASSERT_EQ(scan(cd, false, err, sizeof(err)), 1, "b.yaml changed");
	m = sp_config_dir_model(cd);
	sl = find_slice(m, "b-1");
	if (ASSERT_TRUE(sl && sl->n_endpoints == 1, "b's slice"))
		ASSERT_STREQ(sp_ip_str(&sl->endpoints[0].addr, ip, sizeof(ip)), "10.244.0.22",
			     "b's new endpoint");
	ASSERT_TRUE(find_svc(m, "a") && find_svc(m, "a")->name == a_name,
		    "a.yaml not parsed again (the same memory)");
	expect_changed(cd, "default/b");

	/* A bad b.yaml keeps b's last good state and is reported. */
	if (!put("b.yaml", SVC("b", "10.96.0.2", "10.244.0.300")))
		goto out;
	scan(cd, false, err, sizeof(err));
	m = sp_config_dir_model(cd);
	ASSERT_EQ(n_reports, 1, "one report");
	ASSERT_CONTAINS(reports, "/b.yaml:5:", "it names the file and line");
	ASSERT_CONTAINS(reports, "last good state is kept", "and says what happens");
	sl = find_slice(m, "b-1");
	if (ASSERT_TRUE(sl && sl->n_endpoints == 1, "b's slice kept"))
		ASSERT_STREQ(sp_ip_str(&sl->endpoints[0].addr, ip, sizeof(ip)), "10.244.0.22",
			     "b's last good endpoint");
	ASSERT_EQ(sp_config_dir_n_bad(cd), 1, "one file refused");
	ASSERT_EQ(scan(cd, false, err, sizeof(err)), 0, "a refused file unchanged: nothing to do");
	ASSERT_EQ(n_reports, 0, "and not reported again");

	/* A new file claiming a's name, another a's VIP: both left out. */
	if (!put("d.yaml", SVC("a", "10.96.0.4", "10.244.0.4")) ||
	    !put("e.yaml", SVC("e", "10.96.0.1", "10.244.0.5")))
		goto out;
	scan(cd, false, err, sizeof(err));
	m = sp_config_dir_model(cd);
	ASSERT_EQ(n_reports, 2, "two reports");
	ASSERT_CONTAINS(reports, "/d.yaml:2:", "the duplicate name, with its line");
	ASSERT_CONTAINS(reports, "Service name \"default/a\" is also defined in", "what");
	ASSERT_CONTAINS(reports, "/a.yaml (line 2)", "and where first");
	ASSERT_CONTAINS(reports, "/e.yaml:2:", "the duplicate VIP");
	ASSERT_CONTAINS(reports, "VIP 10.96.0.1:80/TCP is also used in", "what");
	ASSERT_CONTAINS(reports, "left out until it is fixed", "a new file has no good state");
	ASSERT_EQ(m->n_services, 2, "neither d's nor e's Service");
	ASSERT_TRUE(find_svc(m, "e") == NULL, "no e");
	ASSERT_EQ(sp_config_dir_n_bad(cd), 3, "b, d, e refused");

	/* Fixed: b and e apply; d.yaml removed. */
	if (!put("b.yaml", SVC("b", "10.96.0.2", "10.244.0.23")) ||
	    !put("e.yaml", SVC("e", "10.96.0.5", "10.244.0.5")))
		goto out;
	drop("d.yaml");
	ASSERT_EQ(scan(cd, false, err, sizeof(err)), 1, "fixed");
	m = sp_config_dir_model(cd);
	ASSERT_EQ(n_reports, 0, "nothing to report");
	ASSERT_EQ(m->n_services, 3, "a, b, e");
	ASSERT_TRUE(find_svc(m, "e") != NULL, "e");
	ASSERT_EQ(sp_config_dir_n_bad(cd), 0, "nothing refused");

	/* Removed files take their Services and slices with them. */
	drop("b.yaml");
	drop("c.yaml");
	ASSERT_EQ(scan(cd, false, err, sizeof(err)), 1, "removed");
	/* b.yaml's Service, c.yaml's slice's Service. */
	expect_changed(cd, "default/a,default/b");
	m = sp_config_dir_model(cd);
	ASSERT_EQ(m->n_services, 2, "a, e");
	ASSERT_TRUE(find_svc(m, "b") == NULL && find_slice(m, "a-2") == NULL, "b and a-2 gone");
	ASSERT_EQ(sp_config_dir_n_files(cd), 2, "two files");
	sp_config_dir_free(cd);
	cd = NULL;

	/* At start there is no state to keep: a bad file is an error. */
	if (!put("x.yaml", "services: [oops"))
		goto out;
	if (!ASSERT_EQ(sp_config_dir_new(dir, &cd), 0, "new"))
		goto out;
	ASSERT_EQ(scan(cd, true, err, sizeof(err)), -EINVAL, "strict scan refuses");
	ASSERT_CONTAINS(err, "/x.yaml:", "naming the file");
	ASSERT_EQ(sp_config_dir_model(cd)->n_services, 0, "no model");
	drop("x.yaml");
	if (!put("y.yaml", SVC("y", "10.96.0.1", "10.244.0.1")))
		goto out;
	ASSERT_EQ(scan(cd, true, err, sizeof(err)), -EINVAL, "a duplicate across files too");
	ASSERT_CONTAINS(err, "/y.yaml:2:", "blaming the later file");
	drop("y.yaml");
out:
	sp_config_dir_free(cd);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

static void test_missing_dir(void)
{
	struct sp_config_dir *cd;
	char err[512];

	if (!ASSERT_EQ(sp_config_dir_new("/nonexistent/svcplane-config-dir", &cd), 0, "new"))
		return;
	ASSERT_EQ(scan(cd, true, err, sizeof(err)), -ENOENT, "no directory");
	ASSERT_CONTAINS(err, "/nonexistent/svcplane-config-dir: cannot open the directory",
			"named");
	sp_config_dir_free(cd);
}

int main(void)
{
	RUN_TEST(test_dir);
	RUN_TEST(test_missing_dir);
	return sp_test_exit();
}
