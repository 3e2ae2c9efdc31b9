-- SPDX-License-Identifier: MIT
-- tern.data.automation: the default shaping automation rules for the large
-- mailbox providers, written from their published error documentation and
-- the replies their servers give. Shaped as the `providers` section of
-- tern.shaping.new: each entry has the MX suffixes that find its sites and
-- its `automation` rules, so tern.shaping matches them to a site as it
-- matches an operator's providers. An operator's own rules for a provider
-- come first; `automation_defaults = false` in tern.shaping.new leaves these
-- out altogether.
--
-- Rule format (tern.shaping): `regex` (PCRE2, matched caseless over the
-- normalised reply `code enhanced-code text`, as tern.bounce does), `action`
-- (suspend: this source->site path; suspend_source: the source for every
-- site of the provider; suspend_tenant / suspend_campaign; bounce; or
-- { set = { path settings } }), `duration`, and `trigger` (`immediate`, the
-- default, or `N/period`).
--
-- How the actions were chosen. A reply about the sending IP's reputation
-- suspends that IP (its path, or at every site of the provider when the
-- block is the provider's, not one site's), so the pool's other IPs carry
-- the traffic while it recovers: pushing on digs the hole deeper (Microsoft's
-- spam team on mailop, 2026: "S3150 is what you get when you don't slow down
-- after seeing 4xx"). A reply that names a cause no IP change can fix (the
-- campaign's content or URLs, the tenant's domain reputation or
-- authentication) suspends that campaign or tenant instead. A reply that
-- asks for less speed or fewer connections gets `set` (PowerMTA's backoff
-- mode). Replies about one recipient (mailbox full, one user receiving too
-- fast) or one message (RFC 5322, DMARC of one message) are left to bounce
-- classification: no path is at fault. Single occurrences of soft, ambiguous
-- deferrals wait for a trigger count before acting.
return {
  -- Gmail and Google Workspace (support.google.com/mail/answer/3726730, 81126, 188131).
  google = {
    mx_suffixes = { '.google.com', '.googlemail.com' },
    automation = {
      -- "421 4.7.28 ... unusual rate of unsolicited mail originating from your IP address ...
      -- temporarily rate limited": the limit is on this IP; its share moves to the pool's others.
      { regex = '4\\.7\\.28 .*unsolicited mail originating from your IP', action = 'suspend',
        duration = '1h' },
      -- "421 4.7.28 ... unusual rate of unsolicited mail containing one of your URL domains":
      -- the URL travels with the campaign, so every IP would meet the same limit.
      { regex = '4\\.7\\.28 .*containing one of your URL domains', action = 'suspend_campaign',
        duration = '1h', trigger = '3/10m' },
      -- "421 4.7.0 ... suspicious due to the nature of the content and/or the links within":
      -- content again: the campaign, not the IP.
      { regex = '4\\.7\\.0 .*suspicious due to the nature of the content', action = 'suspend_campaign',
        duration = '30m', trigger = '5/10m' },
      -- "421 4.7.0 ... suspicious due to the very low reputation of the sending domain": the
      -- tenant's domain reputation; other IPs carry the same domain.
      { regex = 'very low reputation of the sending domain', action = 'suspend_tenant',
        duration = '1h', trigger = '5/10m' },
      -- "550 5.7.1 ... very low reputation of the sending IP address": Gmail blocks this IP at
      -- every Google site (Workspace domains included), for hours.
      { regex = 'very low reputation of the sending IP', action = 'suspend_source',
        duration = '4h', trigger = '3/10m' },
      -- "421 4.7.30 DKIM ... / 4.7.32 From: not aligned / 4.7.40 no DMARC record ... rate limited":
      -- bulk-sender requirements of the tenant's domain; resending only burns the limit.
      { regex = '4\\.7\\.(?:30|32|40) .*rate limited', action = 'suspend_tenant',
        duration = '1h', trigger = '10/10m' },
      -- "421 4.7.29 ... rate limited because you're not using a TLS connection": this path;
      -- slow it down until TLS is fixed rather than stop it.
      { regex = '4\\.7\\.29 .*rate limited', action = { set = { max_message_rate = '60/min',
        connection_limit = 2 } }, duration = '1h', trigger = '3/5m' },
      -- "421 4.4.5 Server busy, try again later": fewer connections for a while.
      { regex = '4\\.4\\.5 Server busy', action = { set = { connection_limit = 2 } },
        duration = '15m', trigger = '5/5m' },
    },
  },

  -- Outlook.com, Hotmail, Live, MSN and Exchange Online (learn.microsoft.com "NDR ... in
  -- Exchange Online"; sender.office.com delisting; postmaster.live.com).
  microsoft = {
    mx_suffixes = { '.protection.outlook.com' },
    automation = {
      -- "550 5.7.1 Unfortunately, messages from [IP] weren't sent ... part of their network is on
      -- our block list (S3150|S3140)": the IP is blocked for every Microsoft site until a delist
      -- request is handled (hours).
      { regex = '\\((?:S3150|S3140)\\)', action = 'suspend_source', duration = '4h' },
      -- "550 SC-001 ... on our block list": the older form of the same block.
      { regex = 'SC-001 .*block list', action = 'suspend_source', duration = '4h' },
      -- "550 5.7.606 Access denied, banned sending IP [IP]": banned until delisted through
      -- sender.office.com; every attempt meanwhile fails.
      { regex = '5\\.7\\.606 .*banned sending IP', action = 'suspend_source', duration = '24h' },
      -- "451 4.7.650 The mail server [IP] has been temporarily rate limited due to IP reputation
      -- (S3113/S3114)": the 4xx Microsoft expects a sender to slow down on; this IP stops.
      { regex = '4\\.7\\.650 .*rate limited due to IP reputation', action = 'suspend',
        duration = '1h', trigger = '3/5m' },
      -- "451 4.7.500 Server busy. Please try again later from [IP]. (S77714)": backoff mode.
      { regex = '4\\.7\\.500 Server busy', action = { set = { max_message_rate = '60/min',
        connection_limit = 2 } }, duration = '30m', trigger = '5/5m' },
      -- "550 5.7.509 ... does not pass DMARC verification and has a DMARC policy of reject",
      -- "550 5.7.515 ... does not meet the required authentication level": the tenant's domain.
      { regex = '5\\.7\\.(?:509|515) Access denied, sending domain', action = 'suspend_tenant',
        duration = '1h', trigger = '10/10m' },
    },
  },

  -- Yahoo and AOL: one mail system behind *.yahoodns.net (senders.yahooinc.com, "SMTP error
  -- codes"; postmaster.yahooinc.com/error-codes).
  yahoo = {
    mx_suffixes = { '.yahoodns.net' },
    automation = {
      -- "421 4.7.0 [TSS04] Messages from IP temporarily deferred due to unexpected volume or
      -- user complaints": Yahoo asks for less volume from this IP; slow it, keep it sending.
      { regex = '\\[TSS04\\]', action = { set = { max_message_rate = '30/min', connection_limit = 2 } },
        duration = '30m', trigger = '3/5m' },
      -- "421 Message from IP temporarily deferred - 4.16.50" and "[TS01]/[TS02] ... deferred":
      -- complaints about this IP's mail; let the pool's others carry it for an hour.
      { regex = '(?:\\[TS0[12]\\]|temporarily deferred - 4\\.16\\.5\\d)', action = 'suspend',
        duration = '1h', trigger = '3/5m' },
      -- "421 4.7.1 [TS03] All messages from IP will be permanently deferred; Retrying will NOT
      -- succeed": said outright; the IP stops at Yahoo and AOL for a day.
      { regex = '(?:\\[TS03\\]|\\[TSS09\\]|will be permanently deferred)', action = 'suspend_source',
        duration = '24h' },
      -- "553 5.7.1 [BL21] Connections will not be accepted from IP, because the ip is in
      -- Spamhaus's list": refused at connect until the listing clears.
      { regex = '\\[BL\\d+\\] Connections will not be accepted', action = 'suspend_source',
        duration = '24h' },
      -- "451 ... Resources temporarily unavailable. Please try again later [#4.16.1]": busy;
      -- fewer connections for a while.
      { regex = 'Resources temporarily unavailable.*#4\\.16\\.1', action = { set = {
        connection_limit = 2 } }, duration = '15m', trigger = '5/5m' },
    },
  },

  -- iCloud, me.com, mac.com (support.apple.com HT204137, postmaster information for iCloud Mail).
  apple = {
    mx_suffixes = { '.mail.icloud.com' },
    automation = {
      -- "421 4.7.1 Messages to ... deferred due to excessive volume": one mailbox when rare,
      -- our volume when many recipients get it at once; then slow down.
      { regex = '4\\.7\\.1 Messages to .* deferred due to excessive volume', action = { set = {
        max_message_rate = '60/min', connection_limit = 3 } }, duration = '30m', trigger = '10/5m' },
      -- "554 ... ESMTP not accepting connections": the IP is refused at the banner.
      { regex = 'ESMTP not accepting connections', action = 'suspend', duration = '1h',
        trigger = '3/5m' },
      -- "550 5.7.1 [CS01] Message rejected due to local policy": reputation filtering of this
      -- IP's traffic; rest it while the others send.
      { regex = '\\[CS01\\] Message rejected due to local policy', action = 'suspend',
        duration = '1h', trigger = '5/10m' },
      -- "550 5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=IP": the IP
      -- is on the blocklist Apple's filter uses; delisting takes hours.
      { regex = '5\\.7\\.0 Blocked - see https?://support\\.proofpoint\\.com/dnsbl',
        action = 'suspend_source', duration = '4h' },
      -- "550 5.7.1 Your email was rejected due to having a domain present in the Spamhaus DBL":
      -- a domain in the campaign's content is listed; every IP carries it.
      { regex = 'domain present in the Spamhaus DBL', action = 'suspend_campaign',
        duration = '4h', trigger = '3/10m' },
      -- "451 4.7.1 Service unavailable - try again later": busy at the top of the hour; fewer
      -- connections.
      { regex = '4\\.7\\.1 Service unavailable - try again later', action = { set = {
        connection_limit = 2 } }, duration = '15m', trigger = '5/5m' },
    },
  },

  -- GMX, WEB.DE and mail.com: one mail system, United Internet's (postmaster.gmx.net/en/
  -- error-messages; postmaster.web.de). Its replies carry no enhanced code, only a case link.
  gmx = {
    mx_suffixes = { '.gmx.net', '.gmx.com', '.web.de' },
    automation = {
      -- "554-... Nemesis ESMTP Service not available 554-No SMTP service 554-IP address is
      -- block listed ... case?c=r0201": refused at connect until delisted.
      { regex = 'IP address is block listed', action = 'suspend_source', duration = '4h' },
      -- "554-... Bad DNS PTR resource record ... c=rdns": the source's reverse DNS is wrong, the
      -- same at every site until it is fixed.
      { regex = 'Bad DNS PTR resource record', action = 'suspend_source', duration = '4h' },
      -- "421-... Nemesis ESMTP Service not available 421-Service unavailable 421-Reject due to
      -- policy restrictions" (the rate limit page): slow this path right down.
      { regex = '^421 .*Reject due to policy restrictions', action = { set = {
        max_message_rate = '30/min', connection_limit = 2 } }, duration = '1h', trigger = '3/5m' },
    },
  },

  -- Orange and Wanadoo (postmaster.orange.fr; OFR codes).
  orange = {
    mx_suffixes = { '.orange.fr' },
    automation = {
      -- "550 ... Adresse IP source bloquee pour incident de spam. Client host blocked for
      -- spamming issues. OFR006_102": the IP is blocked (Cloudmark) until a reset request.
      { regex = 'Client host blocked for spamming issues', action = 'suspend_source',
        duration = '4h' },
      -- "421 ... Service refuse. Veuillez essayer plus tard. Service refused, please try later.
      -- OFR_999 / OFR005_505": reputation throttling of this IP; Orange accepts again hours
      -- later, so rest it and let the others send.
      { regex = 'Service refused, please try later', action = 'suspend', duration = '1h',
        trigger = '3/10m' },
      -- "421 ... Trop de connexions, veuillez verifier votre configuration" (OFR004_104): Orange
      -- allows very few connections per IP; drop to one at once.
      { regex = 'Trop de connexions', action = { set = { connection_limit = 1 } },
        duration = '30m' },
    },
  },
}
