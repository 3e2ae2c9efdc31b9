// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the reading of feedback reports (core/arf.c over
 * core/mime_parse.c) and for the trace header they carry back
 * (core/trace_ref.c). The input is a received message: a 1 must come with a
 * feedback type, every field NUL-terminated within itself, and an address
 * (when there is one) holding an '@'. A ref found is verified with a fixed
 * secret; whatever it says, a verified ref must format back to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/arf.h"
#include "tern/trace_ref.h"

#define TERMINATED(f) (memchr((f), '\0', sizeof(f)) != NULL)

static const char secret[] = "fuzz-secret-0123456789";

static void
check_ref(const char *value)
{
	struct trace_ref ref;
	struct buf again;

	if (trace_ref_verify(value, secret, sizeof(secret) - 1, &ref) != 0)
		return;
	buf_init(&again);
	if (trace_ref_format(&ref, secret, sizeof(secret) - 1, &again) < 0 ||
	    trace_ref_verify(again.data, secret, sizeof(secret) - 1, &ref) != 0)
		abort();
	buf_deinit(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arf_report a;
	int rc = arf_parse((const char *)data, size, &a);

	if (rc == 0)
		return 0;
	if (rc != 1 || !TERMINATED(a.feedback_type) || !TERMINATED(a.user_agent) ||
	    !TERMINATED(a.original_rcpt) || !TERMINATED(a.original_mail_from) ||
	    !TERMINATED(a.original_message_id) || !TERMINATED(a.source_ip) ||
	    !TERMINATED(a.arrival_date) || !TERMINATED(a.reported_domain) || !TERMINATED(a.ref))
		abort();
	if (a.feedback_type[0] == '\0' || (a.original_rcpt[0] && !strchr(a.original_rcpt, '@')))
		abort();
	check_ref(a.ref);
	return 0;
}
