// SPDX-License-Identifier: MIT
/*
 * DNS for delivery: c-ares on the shard's libev loop. c-ares tells us which
 * sockets it wants watched (ARES_OPT_SOCK_STATE_CB) and when it next needs
 * a timeout pass (ares_timeout); we drive it with ev_io watchers and one
 * ev_timer, so a lookup never blocks the shard.
 *
 * A domain has one cache entry per resolver. The entry holds the cached
 * result and, while a resolution runs, the queries waiting for it: a second
 * lookup of the same domain joins them instead of asking again. The
 * resolution asks MX, then A and AAAA of every MX host at once, under one
 * deadline. c-ares answers that arrive after the entry finished (deadline,
 * reconfiguration) are recognised by the entry's generation and dropped.
 */
#include "tern/dns.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/shard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <ev.h>

#define DNS_TTL_MIN 5.0		/* floor: a zero TTL must not make every lookup go out */
#define DNS_TTL_MAX 86400.0	/* cap: a day */
#define DNS_NEGATIVE_TTL 300.0	/* NXDOMAIN/NODATA without an SOA */
#define DNS_TEMPFAIL_TTL 5.0	/* transient failures: just enough to absorb a burst */
#define DNS_MAX_HOSTS 16	/* MX hosts resolved per domain */
#define DNS_SWEEP_INTERVAL 60.0 /* drop expired entries this often */
#define DNS_CLASS_IN 1

/* The process-wide configuration; gen tells resolvers it changed. */
static struct {
	pthread_mutex_t mu;
	unsigned gen;
	char servers[DNS_MAX_SERVERS * 64];
	double timeout;
	int attempts;
} config = {PTHREAD_MUTEX_INITIALIZER, 0, "", DNS_DEFAULT_TIMEOUT, DNS_DEFAULT_ATTEMPTS};

struct dns_query {
	struct dns_query *next, **pprev;
	dns_mx_fn cb;
	void *arg;
};

struct dns_entry {
	struct dns_entry *hnext;
	struct dns_resolver *r;
	char domain[256]; /* lower case, no trailing dot */
	struct dns_mx_result *result;
	struct dns_query *waiters;
	bool resolving;
	bool delivering; /* callbacks running: a sweep from one of them must keep the
			    entry */
	unsigned gen;	 /* resolution number: answers for older ones are stale */
	int pending;	 /* c-ares questions of this entry still out, any generation */
	int hosts_left;	 /* address questions of this resolution still out */
	bool host_tempfail;
	char last_error[64];
	double ttl; /* smallest TTL seen so far */
	struct dns_mx_result *building;
	ev_timer deadline;
};

/* The c-ares callback's argument: one question. */
struct dns_ask {
	struct dns_entry *e;
	unsigned gen;
	int host; /* index in building->hosts, or -1 for the MX question */
	int qtype;
};

struct dns_sock {
	struct dns_sock *next;
	ev_io io;
};

struct dns_resolver {
	struct ev_loop *loop;
	ares_channel channel;
	unsigned config_gen;
	double timeout;
	int pending; /* c-ares questions out */
	int in_ares; /* depth of calls into c-ares: it must not be destroyed from
			inside */
	bool destroying;
	ev_timer timer;
	ev_timer sweep;
	struct dns_sock *socks;
	struct dns_entry **buckets;
	size_t n_buckets, n_entries;
	struct dns_stats stats;
};

static struct dns_mx_result oom_result = {
    .refs = -1, .status = DNS_TEMPFAIL, .error = "out of memory"};
static struct dns_mx_result unavailable_result = {
    .refs = -1, .status = DNS_TEMPFAIL, .error = "DNS resolver unavailable"};
static struct dns_mx_result invalid_result = {
    .refs = -1, .status = DNS_NXDOMAIN, .error = "invalid domain name"};

const char *
dns_status_name(enum dns_status status)
{
	static const char *const names[] = {"OK", "NXDOMAIN", "NULL_MX", "NO_ADDRESS", "TEMPFAIL"};

	return (unsigned)status < TERN_ARRAY_LEN(names) ? names[status] : "?";
}

/* ---- configuration ---- */

/* "ip", "ip:port" or "[ipv6]:port", the forms ares_set_servers_ports_csv takes.
 */
static bool
server_valid(const char *s)
{
	char host[64];
	const char *port = NULL, *end;
	unsigned char buf[16];
	size_t n;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return false;
		n = (size_t)(end - s - 1);
		if (n >= sizeof(host))
			return false;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		port = end[1] == ':' ? end + 2 : NULL;
		return inet_pton(AF_INET6, host, buf) == 1 &&
		       (port == NULL || (atoi(port) > 0 && atoi(port) < 65536 &&
					 strspn(port, "0123456789") == strlen(port)));
	}
	if (inet_pton(AF_INET6, s, buf) == 1)
		return true;
	end = strchr(s, ':');
	n = end ? (size_t)(end - s) : strlen(s);
	if (n >= sizeof(host))
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	if (end && (atoi(end + 1) <= 0 || atoi(end + 1) > 65535 ||
		    strspn(end + 1, "0123456789") != strlen(end + 1)))
		return false;
	return inet_pton(AF_INET, host, buf) == 1;
}

static int
config_servers_csv(const struct dns_config *cfg, char *out, size_t size, struct tern_err *err)
{
	size_t i, used = 0;

	out[0] = '\0';
	if (cfg->n_servers > DNS_MAX_SERVERS) {
		tern_err_set(err, 0, "", "at most %d servers", DNS_MAX_SERVERS);
		return -EINVAL;
	}
	for (i = 0; i < cfg->n_servers; i++) {
		if (!server_valid(cfg->servers[i])) {
			tern_err_set(err, 0, "",
				     "'%s' is not a server address (ip, ip:port or [ipv6]:port)",
				     cfg->servers[i]);
			return -EINVAL;
		}
		used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "",
					 cfg->servers[i]);
	}
	return 0;
}

int
dns_configure(const struct dns_config *cfg, struct tern_err *err)
{
	char csv[sizeof(config.servers)];
	double timeout = cfg->timeout > 0 ? cfg->timeout : DNS_DEFAULT_TIMEOUT;
	int attempts = cfg->attempts > 0 ? cfg->attempts : DNS_DEFAULT_ATTEMPTS;

	if (config_servers_csv(cfg, csv, sizeof(csv), err) < 0)
		return -EINVAL;
	if (timeout > 3600 || attempts > 10) {
		tern_err_set(err, 0, "", "timeout must be at most 1h and attempts at most 10");
		return -EINVAL;
	}
	pthread_mutex_lock(&config.mu);
	if (strcmp(csv, config.servers) != 0 || timeout != config.timeout ||
	    attempts != config.attempts) {
		memcpy(config.servers, csv, sizeof(csv));
		config.timeout = timeout;
		config.attempts = attempts;
		config.gen++;
	}
	pthread_mutex_unlock(&config.mu);
	return 0;
}

/* ---- the channel on the loop ---- */

static void
timer_update(struct dns_resolver *r)
{
	struct timeval tv, *t;

	ev_timer_stop(r->loop, &r->timer);
	if (r->pending == 0)
		return;
	t = ares_timeout(r->channel, NULL, &tv);
	if (t == NULL)
		return;
	ev_timer_set(&r->timer, (double)t->tv_sec + (double)t->tv_usec / 1e6, 0);
	ev_timer_start(r->loop, &r->timer);
}

static void
process(struct dns_resolver *r, ares_socket_t rfd, ares_socket_t wfd)
{
	r->in_ares++;
	ares_process_fd(r->channel, rfd, wfd);
	r->in_ares--;
	timer_update(r);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	process(w->data, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void
on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	process(w->data, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
		(revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
}

static void
on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_sock **pp, *s;
	int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	for (pp = &r->socks; *pp && (*pp)->io.fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (s)
		ev_io_stop(r->loop, &s->io);
	if (events == 0) {
		if (s) {
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		/* c-ares cannot be told of a failure here; without a watcher the query
		 * times out.
		 */
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return;
		s->next = r->socks;
		r->socks = s;
	}
	ev_io_init(&s->io, on_io, fd, events);
	s->io.data = r;
	ev_io_start(r->loop, &s->io);
}

static int
channel_open(struct dns_resolver *r, struct tern_err *err)
{
	struct ares_options o;
	char servers[sizeof(config.servers)];
	int rc,
	    mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;

	pthread_mutex_lock(&config.mu);
	memcpy(servers, config.servers, sizeof(servers));
	r->timeout = config.timeout;
	r->config_gen = config.gen;
	memset(&o, 0, sizeof(o));
	o.tries = config.attempts;
	/* Each attempt gets its share of the lookup's deadline. */
	o.timeout = (int)(config.timeout * 1000 / config.attempts);
	pthread_mutex_unlock(&config.mu);
	/*
	 * Hand SERVFAIL and REFUSED to us as such: by default c-ares turns them
	 * into "could not contact DNS servers", which hides what happened.
	 */
	o.flags = ARES_FLAG_NOCHECKRESP;
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = r;
	rc = ares_init_options(&r->channel, &o, mask);
	if (rc != ARES_SUCCESS) {
		tern_err_set(err, 451, "4.4.3", "DNS: %s", ares_strerror(rc));
		return -ENOMEM;
	}
	/*
	 * Configured servers replace resolv.conf's entirely. Without a
	 * tern.dns.configure, $TERN_DNS_SERVERS may stand in for resolv.conf: test
	 * harnesses use it so that no query can leave the machine.
	 */
	if (servers[0] == '\0' && getenv("TERN_DNS_SERVERS"))
		snprintf(servers, sizeof(servers), "%s", getenv("TERN_DNS_SERVERS"));
	if (servers[0] && (rc = ares_set_servers_ports_csv(r->channel, servers)) != ARES_SUCCESS) {
		tern_err_set(err, 451, "4.4.3", "DNS servers '%s': %s", servers, ares_strerror(rc));
		ares_destroy(r->channel);
		return -EINVAL;
	}
	return 0;
}

/* ---- the cache table ---- */

static size_t
name_hash(const char *s)
{
	size_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct dns_entry **
entry_slot(struct dns_resolver *r, const char *domain)
{
	struct dns_entry **pp = &r->buckets[name_hash(domain) & (r->n_buckets - 1)];

	while (*pp && strcmp((*pp)->domain, domain) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void
table_grow(struct dns_resolver *r)
{
	size_t n = r->n_buckets * 2, i;
	struct dns_entry **b = calloc(n, sizeof(*b)), *e, *next;

	if (b == NULL)
		return; /* longer chains, still correct */
	for (i = 0; i < r->n_buckets; i++) {
		for (e = r->buckets[i]; e; e = next) {
			next = e->hnext;
			e->hnext = b[name_hash(e->domain) & (n - 1)];
			b[name_hash(e->domain) & (n - 1)] = e;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->n_buckets = n;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents);

static struct dns_entry *
entry_get(struct dns_resolver *r, const char *domain)
{
	struct dns_entry **pp = entry_slot(r, domain), *e = *pp;

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->r = r;
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	ev_timer_init(&e->deadline, on_deadline, 0, 0);
	e->deadline.data = e;
	*pp = e;
	if (++r->n_entries > r->n_buckets)
		table_grow(r);
	return e;
}

static bool
entry_idle(const struct dns_entry *e)
{
	return !e->resolving && !e->delivering && e->pending == 0 && e->waiters == NULL;
}

static void
entry_free(struct dns_entry *e)
{
	if (e->result)
		dns_mx_result_unref(e->result);
	if (e->building)
		dns_mx_result_unref(e->building);
	free(e);
}

/* Drop idle entries, all of them or only the expired ones. */
static void
table_sweep(struct dns_resolver *r, bool all)
{
	double now = util_now();
	struct dns_entry **pp, *e;
	size_t i;

	for (i = 0; i < r->n_buckets; i++) {
		for (pp = &r->buckets[i]; (e = *pp);) {
			if (entry_idle(e) &&
			    (all || e->result == NULL || e->result->expires <= now)) {
				*pp = e->hnext;
				entry_free(e);
				r->n_entries--;
			} else {
				pp = &e->hnext;
			}
		}
	}
}

static void
on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	table_sweep(w->data, false);
}

/* ---- results ---- */

void
dns_mx_result_ref(struct dns_mx_result *res)
{
	if (res->refs >= 0)
		res->refs++;
}

static void
hosts_free(struct dns_mx_result *res)
{
	size_t i;

	for (i = 0; i < res->n_hosts; i++)
		free(res->hosts[i].addrs);
	free(res->hosts);
	res->hosts = NULL;
	res->n_hosts = 0;
}

void
dns_mx_result_unref(struct dns_mx_result *res)
{
	if (res->refs < 0 || --res->refs > 0)
		return;
	hosts_free(res);
	free(res);
}

static double
clamp_ttl(double ttl)
{
	return ttl < DNS_TTL_MIN ? DNS_TTL_MIN : ttl > DNS_TTL_MAX ? DNS_TTL_MAX : ttl;
}

static void
note_ttl(struct dns_entry *e, double ttl)
{
	if (ttl < e->ttl)
		e->ttl = ttl;
}

static double
negative_ttl(const struct dns_answer *a)
{
	return a && a->negative_ttl >= 0 ? (double)a->negative_ttl : DNS_NEGATIVE_TTL;
}

static const char *
ares_error_text(int status)
{
	switch (status) {
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ETIMEOUT:
		return "timed out";
	case ARES_ENOTFOUND:
		return "NXDOMAIN";
	case ARES_ENODATA:
		return "no data";
	default:
		return ares_strerror(status);
	}
}

/* ---- a resolution ---- */

static void
deliver(struct dns_entry *e)
{
	struct dns_query *q;

	e->delivering = true;
	while ((q = e->waiters) != NULL) {
		e->waiters = q->next;
		if (q->next)
			q->next->pprev = &e->waiters;
		q->cb(q->arg, e->result);
		free(q);
	}
	e->delivering = false;
}

/* End the resolution: the result replaces the cached one and goes to the
 * waiters. */
static void
finish(struct dns_entry *e, enum dns_status status, const char *error, double ttl)
{
	struct dns_mx_result *res = e->building;

	e->building = NULL;
	e->resolving = false;
	e->gen++;
	ev_timer_stop(e->r->loop, &e->deadline);
	res->status = status;
	if (status != DNS_OK) {
		snprintf(res->error, sizeof(res->error), "%s", error);
		hosts_free(res);
	}
	res->expires = util_now() + (status == DNS_TEMPFAIL ? DNS_TEMPFAIL_TTL : clamp_ttl(ttl));
	if (e->result)
		dns_mx_result_unref(e->result);
	e->result = res;
	log_debug("dns", "%s: %s%s%s", e->domain, dns_status_name(status), error ? " " : "",
		  error ? error : "");
	deliver(e);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	finish(w->data, DNS_TEMPFAIL, "timed out", 0);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void
ask(struct dns_entry *e, int host, int qtype, const char *name)
{
	struct dns_resolver *r = e->r;
	struct dns_ask *a = malloc(sizeof(*a));

	if (a == NULL)
		return; /* the resolution's deadline ends it as a transient failure */
	a->e = e;
	a->gen = e->gen;
	a->host = host;
	a->qtype = qtype;
	e->pending++;
	r->pending++;
	r->stats.ares_queries++;
	r->in_ares++;
	ares_query(r->channel, name, DNS_CLASS_IN, qtype, on_answer, a);
	r->in_ares--;
}

static int
host_cmp(const void *a, const void *b)
{
	const struct dns_mx_host *x = a, *y = b;

	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	return strcasecmp(x->name, y->name);
}

/* Keep the hosts that have addresses, IPv4 before IPv6 within each. */
static size_t
hosts_compact(struct dns_mx_result *res)
{
	size_t i, j, k, n = 0;

	for (i = 0; i < res->n_hosts; i++) {
		struct dns_mx_host h = res->hosts[i];

		if (h.n_addrs == 0) {
			free(h.addrs);
			continue;
		}
		for (j = 1; j < h.n_addrs; j++) {
			struct sockaddr_storage v = h.addrs[j];

			for (k = j; k > 0 && v.ss_family == AF_INET &&
				    h.addrs[k - 1].ss_family == AF_INET6;
			     k--)
				h.addrs[k] = h.addrs[k - 1];
			h.addrs[k] = v;
		}
		res->hosts[n++] = h;
	}
	res->n_hosts = n;
	return n;
}

static void
hosts_done(struct dns_entry *e)
{
	struct dns_mx_result *res = e->building;

	if (hosts_compact(res) > 0) {
		if (e->host_tempfail && e->ttl > DNS_TEMPFAIL_TTL)
			e->ttl = DNS_TEMPFAIL_TTL; /* retry the failed hosts soon */
		finish(e, DNS_OK, NULL, e->ttl);
	} else if (e->host_tempfail) {
		finish(e, DNS_TEMPFAIL, e->last_error, 0);
	} else {
		finish(e, DNS_NO_ADDRESS,
		       res->implicit ? "no MX and no address" : "no address for any MX host",
		       e->ttl);
	}
}

static int
host_add_addrs(struct dns_mx_host *h, const struct dns_answer *a, int qtype)
{
	struct sockaddr_storage *p = realloc(h->addrs, (h->n_addrs + a->n_rrs) * sizeof(*p));
	size_t i;

	if (p == NULL)
		return -ENOMEM;
	h->addrs = p;
	for (i = 0; i < a->n_rrs; i++) {
		struct sockaddr_storage *ss = &h->addrs[h->n_addrs++];

		memset(ss, 0, sizeof(*ss));
		if (qtype == DNS_TYPE_A) {
			struct sockaddr_in *sin = (struct sockaddr_in *)ss;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, a->rrs[i].addr, 4);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, a->rrs[i].addr, 16);
		}
	}
	return 0;
}

static void
on_addrs(struct dns_entry *e, struct dns_ask *q, int status, const struct dns_answer *a)
{
	size_t i;

	if (status == ARES_SUCCESS && a) {
		for (i = 0; i < a->n_rrs; i++)
			note_ttl(e, a->rrs[i].ttl);
		if (host_add_addrs(&e->building->hosts[q->host], a, q->qtype) < 0)
			status = ARES_ENOMEM;
	} else if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
		note_ttl(e, negative_ttl(a));
	}
	if (status != ARES_SUCCESS && status != ARES_ENOTFOUND && status != ARES_ENODATA) {
		e->host_tempfail = true;
		snprintf(e->last_error, sizeof(e->last_error), "%s", ares_error_text(status));
	}
	if (--e->hosts_left == 0)
		hosts_done(e);
}

/* Ask A and AAAA of every host at once. */
static void
resolve_hosts(struct dns_entry *e)
{
	struct dns_mx_result *res = e->building;
	unsigned gen = e->gen;
	size_t i;

	/* One extra count so that answers arriving during the loop cannot finish
	 * early. */
	e->hosts_left = (int)res->n_hosts * 2 + 1;
	for (i = 0; i < res->n_hosts && e->gen == gen; i++) {
		char name[256];

		snprintf(name, sizeof(name), "%s", res->hosts[i].name);
		name[strlen(name) - 1] = '\0'; /* the trailing dot */
		ask(e, (int)i, DNS_TYPE_A, name);
		if (e->gen == gen)
			ask(e, (int)i, DNS_TYPE_AAAA, name);
	}
	if (e->gen == gen && --e->hosts_left == 0)
		hosts_done(e);
}

static int
hosts_from_mx(struct dns_mx_result *res, const struct dns_answer *a)
{
	size_t i, n = 0;

	res->hosts = calloc(a->n_rrs, sizeof(*res->hosts));
	if (res->hosts == NULL)
		return -ENOMEM;
	for (i = 0; i < a->n_rrs; i++) {
		if (a->rrs[i].name[0] == '\0' || strlen(a->rrs[i].name) > 253)
			continue; /* a null MX among real ones means nothing */
		snprintf(res->hosts[n].name, sizeof(res->hosts[n].name), "%s.", a->rrs[i].name);
		res->hosts[n++].preference = a->rrs[i].preference;
	}
	qsort(res->hosts, n, sizeof(*res->hosts), host_cmp);
	res->n_hosts = n < DNS_MAX_HOSTS ? n : DNS_MAX_HOSTS;
	return 0;
}

static void
implicit_mx(struct dns_entry *e)
{
	struct dns_mx_result *res = e->building;

	res->hosts = calloc(1, sizeof(*res->hosts));
	if (res->hosts == NULL) {
		finish(e, DNS_TEMPFAIL, "out of memory", 0);
		return;
	}
	res->implicit = true;
	res->n_hosts = 1;
	snprintf(res->hosts[0].name, sizeof(res->hosts[0].name), "%s.", e->domain);
	resolve_hosts(e);
}

static void
on_mx(struct dns_entry *e, int status, const struct dns_answer *a)
{
	size_t i;

	if (status == ARES_ENOTFOUND) {
		finish(e, DNS_NXDOMAIN, "NXDOMAIN", negative_ttl(a));
		return;
	}
	if (status == ARES_ENODATA || (status == ARES_SUCCESS && a->n_rrs == 0)) {
		note_ttl(e, negative_ttl(a));
		implicit_mx(e);
		return;
	}
	if (status != ARES_SUCCESS) {
		finish(e, DNS_TEMPFAIL, ares_error_text(status), 0);
		return;
	}
	for (i = 0; i < a->n_rrs; i++)
		note_ttl(e, a->rrs[i].ttl);
	if (a->n_rrs == 1 && a->rrs[0].name[0] == '\0') {
		finish(e, DNS_NULL_MX, "null MX", e->ttl);
		return;
	}
	if (hosts_from_mx(e->building, a) < 0) {
		finish(e, DNS_TEMPFAIL, "out of memory", 0);
		return;
	}
	resolve_hosts(e);
}

static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_ask *q = arg;
	struct dns_entry *e = q->e;
	struct dns_answer a, *ap = NULL;

	e->pending--;
	e->r->pending--;
	if (e->r->destroying || q->gen != e->gen || !e->resolving) {
		free(q);
		return;
	}
	if (abuf && dns_answer_parse(abuf, (size_t)alen, q->qtype, &a) == 0)
		ap = &a;
	else if (status == ARES_SUCCESS)
		status = ARES_EBADRESP;
	if (q->host < 0)
		on_mx(e, status, ap);
	else
		on_addrs(e, q, status, ap);
	if (ap)
		dns_answer_deinit(ap);
	free(q);
}

static int
entry_start(struct dns_entry *e)
{
	struct dns_mx_result *res = calloc(1, sizeof(*res));

	if (res == NULL)
		return -ENOMEM;
	res->refs = 1;
	e->building = res;
	e->resolving = true;
	e->host_tempfail = false;
	e->last_error[0] = '\0';
	e->ttl = DNS_TTL_MAX;
	e->gen++;
	ev_timer_set(&e->deadline, e->r->timeout, 0);
	ev_timer_start(e->r->loop, &e->deadline);
	ask(e, -1, DNS_TYPE_MX, e->domain);
	return 0;
}

/* ---- the resolver ---- */

static int
resolver_apply_config(struct dns_resolver *r, struct tern_err *err)
{
	int rc;

	if (r->pending > 0 || r->in_ares > 0)
		return TERN_AGAIN;
	if (r->channel)
		ares_destroy(r->channel);
	rc = channel_open(r, err);
	if (rc < 0)
		r->channel = NULL;
	/* Answers from the old servers must not outlive them. */
	table_sweep(r, true);
	return rc;
}

int
dns_resolver_reconfigure(struct dns_resolver *r, struct tern_err *err)
{
	return resolver_apply_config(r, err);
}

static void
library_init(void)
{
	ares_library_init(ARES_LIB_INIT_ALL);
}

struct dns_resolver *
dns_resolver_new(struct ev_loop *loop, struct tern_err *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct dns_resolver *r = calloc(1, sizeof(*r));

	pthread_once(&once, library_init);
	if (r == NULL) {
		tern_err_set(err, 451, "4.3.0", "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->n_buckets = 64;
	r->buckets = calloc(r->n_buckets, sizeof(*r->buckets));
	if (r->buckets == NULL || channel_open(r, err) < 0) {
		if (r->buckets == NULL)
			tern_err_set(err, 451, "4.3.0", "out of memory");
		free(r->buckets);
		free(r);
		return NULL;
	}
	ev_timer_init(&r->timer, on_timer, 0, 0);
	r->timer.data = r;
	ev_timer_init(&r->sweep, on_sweep, DNS_SWEEP_INTERVAL, DNS_SWEEP_INTERVAL);
	r->sweep.data = r;
	ev_timer_start(loop, &r->sweep);
	ev_unref(loop); /* the sweep alone must not keep a loop running */
	return r;
}

void
dns_resolver_free(struct dns_resolver *r)
{
	struct dns_entry *e, *next;
	struct dns_query *q;
	struct dns_sock *s;
	size_t i;

	if (r == NULL)
		return;
	r->destroying = true;
	if (r->channel)
		ares_destroy(r->channel);
	while ((s = r->socks) != NULL) {
		r->socks = s->next;
		ev_io_stop(r->loop, &s->io);
		free(s);
	}
	ev_timer_stop(r->loop, &r->timer);
	ev_ref(r->loop);
	ev_timer_stop(r->loop, &r->sweep);
	for (i = 0; i < r->n_buckets; i++) {
		for (e = r->buckets[i]; e; e = next) {
			next = e->hnext;
			ev_timer_stop(r->loop, &e->deadline);
			while ((q = e->waiters) != NULL) {
				e->waiters = q->next;
				free(q);
			}
			entry_free(e);
		}
	}
	free(r->buckets);
	free(r);
}

void
dns_resolver_stats(const struct dns_resolver *r, struct dns_stats *out)
{
	*out = r->stats;
}

/* Lower case, without the trailing dot; false for what cannot be a domain. */
static bool
domain_normalize(const char *in, char out[256])
{
	size_t n = strlen(in), i;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c <= ' ' || c >= 0x7f || c == '\\' ||
		    (c == '.' && (i == 0 || in[i - 1] == '.')))
			return false;
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	return true;
}

static struct dns_query *
answer_now(struct dns_mx_result *res, dns_mx_fn cb, void *arg)
{
	cb(arg, res);
	return NULL;
}

static bool
config_changed(struct dns_resolver *r)
{
	unsigned gen;

	pthread_mutex_lock(&config.mu);
	gen = config.gen;
	pthread_mutex_unlock(&config.mu);
	return gen != r->config_gen;
}

struct dns_query *
dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_fn cb, void *arg)
{
	char name[256];
	struct dns_entry *e;
	struct dns_query *q;
	struct tern_err err;

	r->stats.lookups++;
	metrics_inc(METRICS_DNS_LOOKUPS);
	if (!domain_normalize(domain, name))
		return answer_now(&invalid_result, cb, arg);
	if ((config_changed(r) || r->channel == NULL) && resolver_apply_config(r, &err) < 0 &&
	    r->channel == NULL) {
		log_error("dns", "cannot set up the resolver: %s", err.msg);
		return answer_now(&unavailable_result, cb, arg);
	}
	e = entry_get(r, name);
	if (e == NULL)
		return answer_now(&oom_result, cb, arg);
	if (!e->resolving && e->result && e->result->expires > util_now()) {
		r->stats.cache_hits++;
		metrics_inc(METRICS_DNS_CACHE_HITS);
		return answer_now(e->result, cb, arg);
	}
	if (e->resolving)
		r->stats.coalesced++;
	else if (entry_start(e) < 0)
		return answer_now(&oom_result, cb, arg);
	if (!e->resolving) /* c-ares answered at once (no servers, ...) */
		return answer_now(e->result, cb, arg);
	q = malloc(sizeof(*q));
	if (q == NULL)
		return answer_now(&oom_result, cb, arg);
	q->cb = cb;
	q->arg = arg;
	q->next = e->waiters;
	q->pprev = &e->waiters;
	if (e->waiters)
		e->waiters->pprev = &q->next;
	e->waiters = q;
	timer_update(r);
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	*q->pprev = q->next;
	if (q->next)
		q->next->pprev = q->pprev;
	free(q);
}

/* ---- per shard ---- */

static pthread_mutex_t shard_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dns_resolver **shard_resolvers;
static int n_shard_resolvers;

static void
shard_resolver_exit(struct shard *s, void *arg)
{
	pthread_mutex_lock(&shard_mu);
	dns_resolver_free(shard_resolvers[s->id]);
	shard_resolvers[s->id] = NULL;
	pthread_mutex_unlock(&shard_mu);
}

struct dns_resolver *
dns_for_shard(struct shard *s)
{
	struct dns_resolver *r = NULL;
	struct tern_err err;

	pthread_mutex_lock(&shard_mu);
	if (n_shard_resolvers < shard_count()) {
		struct dns_resolver **p =
		    realloc(shard_resolvers, (size_t)shard_count() * sizeof(*p));

		if (p == NULL)
			goto out;
		memset(p + n_shard_resolvers, 0,
		       (size_t)(shard_count() - n_shard_resolvers) * sizeof(*p));
		shard_resolvers = p;
		n_shard_resolvers = shard_count();
	}
	r = shard_resolvers[s->id];
	if (r == NULL) {
		r = shard_resolvers[s->id] = dns_resolver_new(s->loop, &err);
		if (r)
			shard_on_exit(s, shard_resolver_exit, NULL);
		else
			log_error("dns", "shard %d: %s", s->id, err.msg);
	}
out:
	pthread_mutex_unlock(&shard_mu);
	return r;
}

/* ---- parsing ---- */

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Expand the name at *pos into out (no trailing dot); advances *pos past it. */
static int
read_name(const uint8_t *msg, size_t len, size_t *pos, char *out, size_t size)
{
	char *s;
	long enclen;

	if (*pos >= len || ares_expand_name(msg + *pos, msg, (int)len, &s, &enclen) != ARES_SUCCESS)
		return -EINVAL;
	*pos += (size_t)enclen;
	if (out)
		snprintf(out, size, "%s", s);
	ares_free_string(s);
	return 0;
}

/* The negative TTL from an SOA record's rdata (RFC 2308 section 5). */
static int
read_soa(const uint8_t *msg, size_t len, size_t pos, size_t end, uint32_t ttl,
	 struct dns_answer *out)
{
	uint32_t minimum;

	if (read_name(msg, len, &pos, NULL, 0) < 0 || read_name(msg, len, &pos, NULL, 0) < 0 ||
	    pos + 20 > end)
		return -EINVAL;
	minimum = get32(msg + pos + 16);
	out->negative_ttl = minimum < ttl ? minimum : ttl;
	return 0;
}

static int
read_rdata(const uint8_t *msg, size_t len, size_t pos, size_t rdlen, int type, struct dns_rr *rr)
{
	if (type == DNS_TYPE_A && rdlen == 4) {
		memcpy(rr->addr, msg + pos, 4);
		return 0;
	}
	if (type == DNS_TYPE_AAAA && rdlen == 16) {
		memcpy(rr->addr, msg + pos, 16);
		return 0;
	}
	if (type == DNS_TYPE_MX && rdlen >= 3) {
		rr->preference = get16(msg + pos);
		pos += 2;
		return read_name(msg, len, &pos, rr->name, sizeof(rr->name));
	}
	return -EINVAL;
}

/* One resource record at *pos: kept in out when it answers qtype, or read for
 * its SOA. */
static int
read_rr(const uint8_t *msg, size_t len, size_t *pos, bool answer, int qtype, struct dns_answer *out)
{
	size_t p, end;
	uint32_t ttl;
	int type;

	if (read_name(msg, len, pos, NULL, 0) < 0 || *pos + 10 > len)
		return -EINVAL;
	p = *pos + 10;
	type = get16(msg + *pos);
	ttl = get32(msg + *pos + 4);
	if (ttl > 0x7fffffff) /* RFC 2181 8: treat as zero */
		ttl = 0;
	end = p + get16(msg + *pos + 8);
	if (end > len)
		return -EINVAL;
	*pos = end;
	if (answer && type == qtype) {
		struct dns_rr *rr = &out->rrs[out->n_rrs];

		rr->ttl = ttl;
		if (read_rdata(msg, len, p, end - p, type, rr) < 0)
			return -EINVAL;
		out->n_rrs++;
	} else if (!answer && type == DNS_TYPE_SOA) {
		return read_soa(msg, len, p, end, ttl, out);
	}
	return 0;
}

int
dns_answer_parse(const uint8_t *msg, size_t len, int qtype, struct dns_answer *out)
{
	size_t pos = 12, i, qd, an, ns;

	memset(out, 0, sizeof(*out));
	out->negative_ttl = -1;
	if (len < 12)
		return -EINVAL;
	out->rcode = msg[3] & 0x0f;
	qd = get16(msg + 4);
	an = get16(msg + 6);
	ns = get16(msg + 8);
	for (i = 0; i < qd; i++) {
		if (read_name(msg, len, &pos, NULL, 0) < 0 || pos + 4 > len)
			return -EINVAL;
		pos += 4;
	}
	out->rrs = calloc(an ? an : 1, sizeof(*out->rrs));
	if (out->rrs == NULL)
		return -ENOMEM;
	for (i = 0; i < an + ns; i++) {
		if (read_rr(msg, len, &pos, i < an, qtype, out) < 0) {
			dns_answer_deinit(out);
			return -EINVAL;
		}
	}
	return 0;
}

void
dns_answer_deinit(struct dns_answer *a)
{
	free(a->rrs);
	a->rrs = NULL;
	a->n_rrs = 0;
}
