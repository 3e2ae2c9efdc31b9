-- SPDX-License-Identifier: MIT
-- tern.bounce_rules: the default bounce classification rules.
--
-- Each rule is a PCRE2 expression, matched caseless over the normalised reply
-- (`550 5.1.1 text`, multi-line replies joined, their `550-5.1.1` prefixes
-- dropped). The first matching rule wins, so the order below is the design:
-- the specific reasons first (virus, relaying, authentication, content,
-- policy requirements, reputation), then the recipient (inactive, quota,
-- unknown), the sender, the connection, and last a fallback on the enhanced
-- status code (RFC 3463) for replies no text rule knows. Nothing matching:
-- `other`. An optional `site` expression limits a rule to sites (MX host
-- names) it matches.
--
-- Written from current provider replies (the providers' published error
-- pages and bounce corpora); each comment names the reply a rule targets.
-- Operators change them in policy with tern.bounce.configure{ extra = ... }
-- and try a reply with `tern classify`.
local rule = tern.bounce.rule

return {
  -- Gmail 552 5.7.0 "its content presents a potential security issue";
  -- content filters' "Virus Detected; Content Rejected", "infected with ...".
  rule { name = 'virus', category = 'virus-related',
         pattern = [[\bviru(s|ses)\b|malware|infected|potential security issue|\bphishing attachment]] },

  -- Postfix "Relay access denied"; Exchange "Unable to relay"; "This system is
  -- not configured to relay mail"; qmail "we do not relay".
  rule { name = 'relay-denied', category = 'relaying-issues',
         pattern = [[relay(ing)? access denied|unable to relay|not configured to relay|we do not relay|relaying (denied|not (allowed|permitted))|[45]\.7\.64\b]] },

  -- Google Groups "Your email to group ... was rejected due to spam
  -- classification" (it also advises setting up SPF, which is not the cause).
  rule { name = 'google-groups-spam', category = 'spam-related',
         pattern = [[rejected due to spam classification]] },

  -- "554 Transaction failed: Duplicate header 'DKIM-Signature'" (Amazon SES):
  -- the message is malformed, DKIM is only the header's name.
  rule { name = 'duplicate-header', category = 'content-related',
         pattern = [[duplicate header|multiple \S+ headers]] },

  -- Gmail 550 5.7.26 "This mail has been blocked because the sender is
  -- unauthenticated", "Unauthenticated email from X is not accepted due to
  -- domain's DMARC policy", "has an SPF record with a hard fail policy";
  -- Gmail 421 4.7.30 "DKIM authentication didn't pass", 4.7.32 "From: header
  -- isn't aligned with either the authenticated SPF or DKIM", 4.7.40 "doesn't
  -- have a DMARC record"; Outlook 550 5.7.509 "does not pass DMARC
  -- verification", 5.7.515 "does not meet the required authentication level";
  -- iCloud "rejected due to X's DMARC policy"; GMX "Reject due to SPF policy";
  -- mail.ru "owner DMARC policy"; pobox "Bad SPF records".
  rule { name = 'spf-dkim-dmarc', category = 'authentication-failure',
         pattern = [[\b(SPF|DKIM|DMARC)\b|unauthenticated|required authentication level|authentication (results|failed|failure)]] },
  -- RFC 7372 codes: 5.7.20-5.7.24 DKIM/SPF failures, 5.7.26 multiple checks failed.
  rule { name = 'auth-status-code', category = 'authentication-failure',
         pattern = [[^\d{3} [45]\.7\.(2[0-4]|26) ]] },

  -- Gmail 550 5.7.1 "This message is not RFC 5322 compliant"; Gmail
  -- "Messages with multiple addresses in From: header are not accepted";
  -- Yahoo "554 Message not allowed - Headers are not RFC compliant[291]".
  rule { name = 'rfc-compliance', category = 'content-related',
         pattern = [[not RFC ?\d* ?compliant|multiple addresses in From|malformed (header|message)|header (syntax|is invalid)]] },
  -- Gmail 421 4.7.0 "suspicious due to the nature of the content and/or the
  -- links within"; "message content rejected" without a spam verdict.
  rule { name = 'content-suspicious', category = 'content-related',
         pattern = [[nature of the content|content and/or the links|(message|content) (size )?too (big|large)|message size exceeds|[45]\.3\.4 ]] },

  -- Gmail 421 4.7.0 "TLS required for RCPT domain"; Gmail 421 4.7.29
  -- "rate limited because you're not using a TLS connection".
  rule { name = 'tls-required', category = 'policy-related',
         pattern = [[TLS required|not using a TLS|requires? (TLS|STARTTLS|encryption)|must issue a STARTTLS]] },
  -- Gmail 550 5.7.25 "does not have a PTR record setup"; GMX "Bad DNS PTR
  -- resource record"; "Fix reverse DNS for 203.0.113.2".
  rule { name = 'reverse-dns', category = 'policy-related',
         pattern = [[\bPTR\b|reverse DNS|\brDNS\b|[45]\.7\.25 ]] },
  -- Gmail 421 4.7.0 "IP not in whitelist for RCPT domain".
  rule { name = 'allowlist', category = 'policy-related',
         pattern = [[not in (the )?(whitelist|allowlist)]] },

  -- Block lists: Spamhaus (Yahoo "[BL21] ... in Spamhaus's list", iCloud
  -- "domain present in the Spamhaus DBL"), Proofpoint "Blocked - see
  -- .../dnsbl-lookup.cgi", Barracuda "blocked using Barracuda Reputation",
  -- Postfix "blocked using dnsbl.sorbs.net", Outlook "part of their network is
  -- on our block list (S3150)", GMX "IP address is block listed".
  rule { name = 'blocklist', category = 'spam-related',
         pattern = [[spamhaus|dnsbl|\bRBL\b|block ?-?listed|block ?list|blacklist|blocked using|banned sending IP|cloudmark]] },
  -- Reputation: Gmail 550 5.7.1 "very low reputation of the sending IP",
  -- Outlook 451 4.7.650 "temporarily rate limited due to IP reputation",
  -- Proofpoint "IP_REPUTATION".
  rule { name = 'reputation', category = 'spam-related',
         pattern = [[reputation]] },
  -- Gmail 421 4.7.28 "unusual rate of unsolicited mail"; Yahoo 421 4.7.0
  -- [TSS04] "temporarily deferred due to unexpected volume or user
  -- complaints", [TS03] "will be permanently deferred", "temporarily deferred
  -- - 4.16.50"; iCloud "554 ... ESMTP not accepting connections".
  rule { name = 'sender-reputation-defer', category = 'spam-related',
         pattern = [[unsolicited|user complaints|\[TSS?\d\d\]|\b4\.16\.5\d|ESMTP not accepting connections]] },
  -- Barracuda "Message content rejected, UBE"; Mimecast "MCSpamSignature";
  -- Orange "Client host blocked for spamming issues"; "spam detected".
  rule { name = 'spam', category = 'spam-related',
         pattern = [[spam|\bUBE\b|junk mail|bulk mail rejected]] },

  -- Throttling: Postfix "452 4.3.2 Connection rate limit exceeded", "552 Too
  -- many recipients", Yahoo "421 Max message per connection reached", Orange
  -- "Trop de connexions", iCloud "deferred due to excessive volume",
  -- Exchange "4.7.0 Too many connections", Comcast "throttled".
  rule { name = 'throttled', category = 'rate-limited',
         pattern = [[rate limit|too many (concurrent )?(SMTP )?(connections|messages|recipients|sessions)|trop de connexions|max(imum)? (number of )?messages? per (connection|session)|excessive volume|throttl|sending rate]] },

  -- Gmail 550 5.2.1 "The email account that you tried to reach is disabled"
  -- and "is inactive"; Gmail 552 5.2.2 "out of storage space and inactive";
  -- iCloud "inactive email address"; Yahoo "This mailbox is disabled
  -- (554.30)", "disabled or discontinued"; La Poste "Le compte du
  -- destinataire est bloque".
  rule { name = 'inactive', category = 'inactive-mailbox',
         pattern = [[\binactive\b|disabled|discontinued|account (has been |is )?(blocked|suspended|expired|closed|deactivated)|compte du destinataire est bloque|no longer active]] },

  -- Gmail 452 4.2.2 "over quota"; iCloud "user is over quota"; "Mailbox
  -- Full"; procmail "Quota exceeded"; Gmail "receiving mail at a rate that
  -- prevents additional messages", Gmail/Yahoo "receiving mail too quickly".
  rule { name = 'quota', category = 'quota-issues',
         pattern = [[over ?quota|quota exceeded|exceeded (the )?(storage|quota)|mailbox (is )?full|out of storage|insufficient (system )?storage|receiving (e-?)?mail (too quickly|at a rate)]] },

  -- Sender: Orange "Emetteur invalide. Invalid Sender"; Postfix "Sender
  -- address rejected", sendmail "Domain of sender address X does not exist";
  -- Yahoo "deferred due to unresolvable RFC.5321 from domain".
  rule { name = 'invalid-sender', category = 'invalid-sender',
         pattern = [[invalid sender|emetteur invalide|sender address rejected|domain of sender address|sender domain (does not exist|not found|must resolve)|unresolvable \S+ from domain|^\d{3} [45]\.1\.[78] ]] },

  -- Gmail 550 5.1.1 "The email account that you tried to reach does not
  -- exist"; Exchange "5.1.10 RESOLVER.ADR.RecipientNotFound"; Exchange edge
  -- "5.4.1 Recipient address rejected: Access denied"; Outlook "Requested
  -- action not taken: mailbox unavailable"; Yahoo "This user doesn't have a
  -- yahoo.com account"; AOL "MAILBOX NOT FOUND"; iCloud "recipient no longer
  -- on server", "user not found"; Orange / La Poste "Invalid recipient";
  -- Barracuda "User unknown"; Postfix "User unknown in virtual alias table".
  rule { name = 'unknown-recipient', category = 'bad-mailbox',
         pattern = [[user (unknown|not found)|unknown (user|recipient|mailbox)|no such (user|mailbox|recipient)|does not exist|doesn'?t exist|RecipientNotFound|invalid recipient|destinataire invalide|mailbox (unavailable|not found)|recipient address rejected|no longer on server|doesn'?t have an? \S+ account|address (is )?not (found|valid)|no mailbox]] },

  -- Gmail 553 5.1.2 "We weren't able to find the recipient domain"; Outlook
  -- "the domain is not reachable"; "550 5.4.4 Invalid domain"; Postfix "Host
  -- or domain name not found".
  rule { name = 'unknown-domain', category = 'bad-domain',
         pattern = [[recipient domain|domain is not reachable|invalid domain|domain (name )?not found|no such domain|domain does not exist|unrouteable address|^\d{3} [45]\.(1\.2|4\.4) ]] },

  -- Yahoo "554 5.7.9 Message not accepted for policy reasons", "[PH01] Email
  -- not accepted for policy reasons"; iCloud "[CS01] Message rejected due to
  -- local policy"; Mimecast "Host network not allowed", "Sender address
  -- blocked"; Barracuda "rejecting spoofed message"; "Denied by policy",
  -- "Access denied".
  rule { name = 'policy', category = 'policy-related',
         pattern = [[polic(y|ies)|not allowed|not permitted|access denied|spoof|address blocked|\bblocked\b|prohibited]] },
  -- A bare "550 Rejected" / "550 5.7.1 Rejected" says no more than "policy".
  rule { name = 'bare-rejection', category = 'policy-related',
         pattern = [[^5\d\d( [45]\.\d\.\d+)? (message )?(rejected|denied)\.?$]] },

  -- Gmail 451 4.5.0 "SMTP protocol violation"; Gmail 503 5.5.1 "EHLO/HELO
  -- first"; "503 Improper sequence of commands"; "500 Line too long".
  rule { name = 'protocol', category = 'protocol-errors',
         pattern = [[protocol violation|out of sequence|(bad|improper) sequence|HELO first|command (not recognized|unrecognized)|line too long|pipelining]] },

  -- GMX/WEB.DE "501 Syntax error in parameters or arguments" (what we sent did
  -- not fit the receiver's configuration); RFC 3463 X.3.5 "System
  -- incorrectly configured".
  rule { name = 'configuration', category = 'bad-configuration',
         pattern = [[syntax error in parameters|misconfigur|incorrectly configured|configuration error|^\d{3} [45]\.3\.5 ]] },

  -- Routing: "mail loop", "too many hops" (X.4.6), "no route to host",
  -- "MX points to CNAME", "null MX" (RFC 7505).
  rule { name = 'routing', category = 'routing-errors',
         pattern = [[mail (for \S+ )?loops? back|mail loop|routing loop|too many hops|no route to host|unable to route|MX (points|record) .{0,40}(CNAME|invalid|localhost)|null MX|^\d{3} [45]\.4\.[036] ]] },

  -- tern's own "451 4.4.1 connect ..." failures, and "connection refused",
  -- "connection timed out", "no answer from host".
  rule { name = 'no-answer', category = 'no-answer-from-host',
         pattern = [[connection refused|timed? ?out|no answer|no response from|host (is )?unreachable|^\d{3} [45]\.4\.1 ]] },
  -- tern's "451 4.4.2 connection lost"; Postfix "lost connection with X
  -- while performing the HELO handshake"; "connection reset", TLS failures.
  rule { name = 'connection-lost', category = 'bad-connection',
         pattern = [[lost connection|connection (lost|reset|closed|dropped)|broken pipe|handshake failed|^\d{3} [45]\.4\.2 ]] },
  -- tern's "551 5.4.7 message expired: too old to deliver"; Postfix "delivery
  -- temporarily suspended ... message too old"; "4.4.7 Delivery time expired".
  rule { name = 'expired', category = 'message-expired',
         pattern = [[expired|too old|too long in (the )?queue|^\d{3} [45]\.4\.7 ]] },

  -- Transient trouble at the receiver that says nothing about the sender:
  -- Gmail "421 4.4.5 Server busy, try again later", Exchange "451 4.7.500
  -- Server busy", Orange "Service refuse ... please try later", Mimecast
  -- "Internal resource temporarily unavailable", Yahoo "Resources temporarily
  -- unavailable", iCloud "451 4.7.1 Service unavailable - try again later".
  rule { name = 'busy', category = 'other',
         pattern = [[server busy|try again later|try later|temporarily unavailable|service (refused|refuse|unavailable)|unable to process|transaction failed]] },

  -- Fallbacks on the enhanced status code alone (RFC 3463), for replies no
  -- text rule above recognises.
  rule { name = 'code-bad-mailbox', category = 'bad-mailbox', pattern = [[^\d{3} [45]\.1\.(1|10|6) ]] },
  rule { name = 'code-inactive', category = 'inactive-mailbox', pattern = [[^\d{3} [45]\.2\.1 ]] },
  rule { name = 'code-quota', category = 'quota-issues', pattern = [[^\d{3} [45]\.2\.2 ]] },
  rule { name = 'code-content', category = 'content-related', pattern = [[^\d{3} [45]\.(2\.3|6\.\d+) ]] },
  rule { name = 'code-protocol', category = 'protocol-errors', pattern = [[^\d{3} [45]\.5\.\d+ ]] },
  rule { name = 'code-policy', category = 'policy-related', pattern = [[^\d{3} [45]\.7\.\d+ ]] },
}
