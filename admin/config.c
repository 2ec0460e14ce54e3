/*
 * admin/config: `config check`: loads the configuration file named by
 * -c and prints FILE:LINE: message for each error, or "config ok".
 *
 * Entry points: admin__config_check (admin_int.h).
 * OWNERSHIP: the configuration loaded is freed before returning.
 * THREADS: any. ERRORS: 78 for a bad configuration.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ config */

int admin__config_check(struct admin *a, const struct admin_args *args)
{
	struct config *cfg = NULL;
	struct buf errors;
	int rc;

	(void)args;
	if (a->io->config_file == NULL)
		return admin__usage(a, "-c FILE is required");
	buf_init(&errors);
	rc = cfg_load_flags(a->io->config_file, CFG_LOAD_TO_RUN, &cfg, &errors);
	if (rc != 0) {
		if (errors.len == 0) {
			char eb[ADMIN_ERRBUF];

			buf_printf(&errors, "%s: cannot load: %s\n", a->io->config_file,
			    admin__strerror(-rc, eb, sizeof eb));
		}
		rc = EX_CONFIG;
		fwrite(errors.data, 1, errors.len, a->io->err);
	}
	cfg_unref(cfg);
	if (a->json) {
		struct admin_json j;
		char *p, *nl;

		admin__json_begin(&j);
		admin__json_kstr(&j, "config", a->io->config_file);
		admin__json_kbool(&j, "ok", rc == 0);
		admin__json_open(&j, "errors", '[');
		for (p = buf_cstr(&errors); *p != '\0'; p = nl) {
			nl = strchr(p, '\n');
			if (nl != NULL)
				*nl++ = '\0';
			else
				nl = p + strlen(p);
			admin__json_sep(&j, NULL);
			admin__json_str(&j.b, p);
		}
		admin__json_close(&j, ']');
		admin__json_end(a, &j);
	}
	if (rc == 0 && !a->json)
		admin__out(a, "config ok: %s\n", a->io->config_file);
	buf_free(&errors);
	return rc;
}

