// SPDX-License-Identifier: MIT
/*
 * Sending DSNs. This runs only for the few messages that fail for good, so
 * it may ask get_queue_config again and read the original's headers from
 * the spool when the outcome did not load them (expiry does not). A DSN
 * that cannot be made or spooled is logged and given up: the failure's own
 * record is already written, and a DSN is a courtesy, never a reason to
 * hold the failed message.
 */
#include "tern/dsn_send.h"
#include "tern/config.h"
#include "tern/dsn.h"
#include "tern/log.h"
#include "tern/logrec.h"
#include "tern/message.h"
#include "tern/queue.h"
#include "tern/reception.h"
#include "tern/shard.h"
#include "tern/spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool
queue_wants_dsn(const struct queue_msg *m)
{
	char campaign[128], tenant[128], domain[256];
	struct queue_config cfg;
	struct tern_err err;
	bool yes;

	queue_name_parse(queue_msg_name(m), campaign, sizeof(campaign), tenant, sizeof(tenant),
			 domain, sizeof(domain));
	if (config_queue(shard_self(), domain, tenant, campaign, &cfg, &err) < 0)
		return false;
	yes = cfg.dsn;
	queue_config_deinit(&cfg);
	return yes;
}

/* The original's data, loaded from the spool when the outcome came without it. */
static int
load_data(struct message *msg)
{
	struct tern_err err;

	if (msg->data.len > 0)
		return 0;
	if (spool_get_data(queue_spool(), &msg->id, &msg->data, &err) < 0) {
		log_warn("dsn", "no DSN: the original cannot be read (%s)", err.msg);
		return -1;
	}
	return 0;
}

static void
fill_report(struct dsn_report *r, const struct message *msg, const struct logrec *rec,
	    const char *host, const char *mid)
{
	bool expired = strcmp(rec->type, "Expiration") == 0;

	*r = (struct dsn_report){
	    .reporting_mta = host,
	    .to = msg->sender,
	    .recipient = msg->recipient ? msg->recipient : "",
	    .status = rec->response_enhanced ? rec->response_enhanced
		      : expired		     ? "5.4.7"
					     : "5.0.0",
	    .code = rec->response_code,
	    .enhanced = rec->response_enhanced,
	    .diagnostic = rec->response_content,
	    .remote_mta = expired ? NULL : rec->site,
	    .expired = expired,
	    .message_id = mid,
	    .arrival_date = msg->created,
	    .date = util_wallclock(),
	    .headers = msg->data.data,
	    .headers_len = message_header_len(msg),
	};
}

/* The DSN as a message of its own: null sender, the original's tenant, meta dsn_of. */
static struct message *
make_dsn(struct message *msg, const struct logrec *rec)
{
	char host[256], hex[SPOOL_ID_HEX_LEN + 1], mid[SPOOL_ID_HEX_LEN + 300],
	    of[SPOOL_ID_HEX_LEN + 3];
	const struct meta_entry *tenant = message_get_meta(msg, "tenant");
	struct message *d = message_new("", msg->sender);
	static __thread uint16_t lane;
	struct dsn_report r;
	struct tern_err err;

	if (d == NULL)
		return NULL;
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	spool_make_id(&d->id, 0, (uint16_t)(shard_self()->id + lane++));
	d->created = util_wallclock();
	spool_id_to_hex(&d->id, hex);
	snprintf(mid, sizeof(mid), "%s@%s", hex, host);
	fill_report(&r, msg, rec, host, mid);
	spool_id_to_hex(&msg->id, hex);
	snprintf(of, sizeof(of), "\"%s\"", hex);
	if (dsn_build(&r, &d->data, &err) < 0) {
		log_warn("dsn", "no DSN for %s: %s", hex, err.msg);
		message_free(d);
		return NULL;
	}
	if ((tenant && message_set_meta(d, "tenant", tenant->json, tenant->json_len) < 0) ||
	    message_set_meta(d, "dsn_of", of, strlen(of)) < 0) {
		message_free(d);
		return NULL;
	}
	return d;
}

void
dsn_send_for(struct queue_msg *m, struct message *msg, const struct logrec *rec)
{
	const struct reception_origin origin = {.listener = "dsn"};
	struct message **msgs;
	struct tern_err err;

	if (msg->sender[0] == '\0' || !queue_wants_dsn(m) || load_data(msg) < 0 ||
	    dsn_is_report(msg->data.data, message_header_len(msg)))
		return;
	msgs = calloc(1, sizeof(*msgs));
	if (msgs == NULL || (msgs[0] = make_dsn(msg, rec)) == NULL) {
		free(msgs);
		log_warn("dsn", "no DSN to <%s>: out of memory", msg->sender);
		return;
	}
	/* The reception owns the message from here, and logs its Reception record. */
	if (reception_submit(shard_self(), msgs, 1, &origin, NULL, NULL, &err) == NULL)
		log_warn("dsn", "no DSN to <%s>: %s", msg->sender, err.msg);
}
