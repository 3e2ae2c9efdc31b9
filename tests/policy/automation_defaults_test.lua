-- SPDX-License-Identifier: MIT
-- The default automation rules (lua/tern/data/automation.lua): every rule is well formed and
-- its regex compiles as PCRE2 the way tern.bounce compiles its own (caseless, over the
-- normalised reply); each rule answers the provider replies it was written for, no reply is
-- answered by two rules, and no rule answers another provider's replies or the replies left to
-- bounce classification (one recipient, one message).
local t = require 'tern.testing'
local defaults = require 'tern.data.automation'

local ACTIONS = { suspend = true, suspend_source = true, suspend_tenant = true,
                  suspend_campaign = true, bounce = true }
local RULE_KEYS = { regex = true, action = true, duration = true, trigger = true }

-- Replies by provider, with the index of the rule of that provider that must answer each one
-- (0: none may). Collected from providers' bounces (sisimai's set of emails, postmaster pages).
local EXAMPLES = {
  { 'google', 0, [==[550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. Learn more at 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser e22-n7GpZmsf093195.222 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550 5.2.1 The email account that you tried to reach is disabled. g0000000000ggg.00]==] }, -- Gmail
  { 'google', 0, [==[550-5.2.1 The email account that you tried to reach is disabled. Learn more at 550 5.2.1 https://support.google.com/mail/?p=DisabledUser 000000000000eee.000 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[552-5.2.2 The recipient's inbox is out of storage space and inactive. Please 552-5.2.2 direct the recipient to 552 5.2.2 https://support.google.com/mail/?p=OverQuotaPerm c2-202229zmZBNM3agi23.222 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550-5.2.1 The user you are trying to contact is receiving mail at a rate that 550-5.2.1 prevents additional messages from being delivered. For more 550-5.2.1 information, please visit 550 5.2.1 https://support.google.com/mail/?p=ReceivingRatePerm p131si8414989oif.118 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550-5.7.26 This mail has been blocked because the sender is unauthenticated. 550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM. 550-5.7.26 550-5.7.26 Authentication results: 550-5.7.26 DKIM = did not pass 550-5.7.26 SPF [relay3.example.com] with ip: [192.0.2.22] = did not pass 550-5.7.26 550-5.7.26 For instructions on setting up authentication, go to 550 5.7.26 https://support.google.com/mail/answer/81126#authentication c2-202200202020202020222222cat.127 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550-5.7.26 The MAIL FROM domain [mail4.example.com] has an SPF record with a 550-5.7.26 hard fail policy (-all) but it fails to pass SPF checks with the ip: 550-5.7.26 [192.0.2.24]. To best protect our users from spam and phishing, 550-5.7.26 the message has been blocked. For instructions on setting up 550-5.7.26 authentication, go to 550 5.7.26 https://support.google.com/mail/answer/81126#authentication 2-222222630d46222222b002b2d2neko2cat2222222cat.22 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550-5.7.25 [192.0.2.202] The IP address sending this message does not have a 550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not 550-5.7.25 point to the sending IP. As a policy, Gmail does not accept messages 550-5.7.25 from IPs with missing PTR records. For more information, go to 550 5.7.25 https://support.google.com/mail/answer/81126#ip-practices neko-1785a7g6767a6agg.2 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550-5.7.26 Unauthenticated email from libsisimai.org is not accepted due to 550-5.7.26 domain's DMARC policy. Please contact the administrator of 550-5.7.26 libsisimai.org domain if this was a legitimate mail. Please visit 550-5.7.26 https://support.google.com/mail/answer/2451690 to learn about the 550 5.7.26 DMARC initiative. z2si1584129pfn.61 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550-5.7.1 This message is not RFC 5322 compliant. There are multiple Subject 550-5.7.1 headers. To reduce the amount of spam sent to Gmail, this message has 550-5.7.1 been blocked. Please visit 550-5.7.1 https://support.google.com/mail/?p=RfcMessageNonCompliant and review 550 5.7.1 RFC 5322 specifications for more information. c2-aguiqyuiyuqir5678167856aeu8.22 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[550-5.7.1 [2401:2500:102:3032:192.0.2.222 13] Messages with multiple 550 5.7.1 addresses in From: header are not accepted. v14si1155795plk.134 - gsmtp]==] }, -- Gmail
  { 'google', 5, [==[550-5.7.1 [192.0.2.22 18] Our system has detected that this message is 550-5.7.1 likely suspicious due to the very low reputation of the sending IP 550-5.7.1 address. To best protect our users from spam, the message has been 550-5.7.1 blocked. Please visit 550 5.7.1 https://support.google.com/mail/answer/188131 for more information. p22nn000202cat.22 - gsmtp]==] }, -- Gmail
  { 'google', 1, [==[421 4.7.28 [x.xx.xx.xx] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. - gsmtp]==] }, -- Gmail
  { 'google', 2, [==[421 4.7.28 Gmail has detected an unusual rate of unsolicited mail containing one of your URL domains. To protect our users from spam, mail with the URL has been temporarily rate limited.]==] }, -- Gmail
  { 'google', 3, [==[421 4.7.0 [x.xx.xx.xx] Our system has detected that this message is suspicious due to the nature of the content and/or the links within. To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/188131 for more information. - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[552 5.7.0 This message was blocked because its content presents a potential security issue. To review our message content and attachment content guidelines, go to File types blocked in Gmail.]==] }, -- Gmail
  { 'google', 0, [==[Your email to group kijitora@example.com was rejected due to spam classification. To address this issue: * Contact the owner of the group, who can choose to enable message moderation instead of bouncing these emails. * Set up SPF records for your sending domain if you have not done so already. Instructions for both steps can be found here: https://support.google.com/a/answer/168383.]==] }, -- Gmail
  { 'google', 0, [==[421 4.7.0 TLS required for RCPT domain, closing connection. For more information, go to Email encryption in transit.]==] }, -- Gmail
  { 'google', 0, [==[421 4.7.0 IP not in whitelist for RCPT domain, closing connection. For more information, go to Allowlists, denylists, and approved senders.]==] }, -- Gmail
  { 'google', 7, [==[421 4.7.29 Your email has been rate limited because you're not using a TLS connection. Gmail requires all bulk email senders to use TLS/SSL for SMTP connections.]==] }, -- Gmail
  { 'google', 6, [==[421 4.7.30 Your email has been rate limited because DKIM authentication didn't pass for this message. Gmail requires all email bulk senders to authenticate their email with DKIM. Authentication results: DKIM = Did not pass.]==] }, -- Gmail
  { 'google', 6, [==[421 4.7.32 Your email has been rate limited because the From: header (RFC5322) in this message isn't aligned with either the authenticated SPF or DKIM organizational domain.]==] }, -- Gmail
  { 'google', 6, [==[421 4.7.40 Your email has been rate limited because the sending domain doesn't have a DMARC record, or the DMARC record doesn't specify a DMARC policy. Gmail requires all bulk email senders to add a DMARC record to their sending domain.]==] }, -- Gmail
  { 'google', 0, [==[553 5.1.2 We weren't able to find the recipient domain. Please check for any spelling errors and make sure you didn't enter any spaces, periods, or other punctuation after the recipient's email address.]==] }, -- Gmail
  { 'google', 0, [==[451 4.5.0 SMTP protocol violation. For more information, go to About SMTP error messages and review RFC 5321 specifications.]==] }, -- Gmail
  { 'google', 0, [==[503 5.5.1 EHLO/HELO first. An email transaction protocol command was issued out of sequence.]==] }, -- Gmail
  { 'google', 8, [==[421 4.4.5 Server busy, try again later. (mx.google.com) g4sm55605691obe.5 - gsmtp]==] }, -- Gmail
  { 'google', 0, [==[450 4.2.1 The user you are trying to contact is receiving email too quickly. Please resend your message at a later time. If the user is able to receive email at that time, your message will be delivered.]==] }, -- Gmail
  { 'microsoft', 3, [==[550 5.7.606 Access denied, banned sending IP [198.51.100.222]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 (AS16012609)]==] }, -- Microsoft (Exchange Online)
  { 'microsoft', 0, [==[550 5.4.1 [kijitora@example.org]: Recipient address rejected: Access denied [NEKOCHAN.cat-neko22.prod.protection.outlook.com]]==] }, -- Microsoft (Exchange Online)
  { 'microsoft', 0, [==[550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup]==] }, -- Microsoft (Exchange Online)
  { 'microsoft', 6, [==[550 5.7.509 Access denied, sending domain [EXAMPLE.JP] does not pass DMARC verification and has a DMARC policy of reject. [7FQL1BDY0XZ5XGTW.JPNP222.PROD.OUTLOOK.COM 2024-04-29T23:34:45.000Z NG5X6YLY2QZK8T7B] [VB0JMRQKNLZPTQMN.eurprd06.prod.outlook.com 2024-04-29T23:34:45.000Z HTTZYWCWHTZK8F8N] [JUTN0NNV051736.eop-eur22.prod.protection.outlook.com 2024-04-29T23:34:45.000Z K2TP4MV8R6ZF2XN2]]==] }, -- Microsoft (Outlook.com)
  { 'microsoft', 4, [==[451 4.7.650 The mail server [192.0.2.25] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S3113) [5NY1SSJFSTZJRJBG.eurprd02.prod.outlook.com 2024-05-09T23:34:45.000Z GLXTWVLGZHZNHVXY]]==] }, -- Microsoft (Outlook.com)
  { 'microsoft', 1, [==[550 5.7.1 Unfortunately, messages from [**.**.**.**] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to [DB3EUR04FT007.eop-eur04.prod.protection.outlook.com]]==] }, -- Microsoft (Outlook.com)
  { 'microsoft', 1, [==[550 5.7.1 Unfortunately, messages from [11.22.33.44] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [DM6NAM12FT056.eop-nam12.prod.protection.outlook.com]]==] }, -- Microsoft (Outlook.com)
  { 'microsoft', 2, [==[550 SC-001 (BAY004-MC4F49) Unfortunately, messages from weren't sent. Please contact your Internet service provider since part of their network is on our block list. You can also refer your provider to]==] }, -- Microsoft (Outlook.com)
  { 'microsoft', 6, [==[550 5.7.515 Access denied, sending domain <domain> does not meet the required authentication level.]==] }, -- Microsoft (Outlook.com)
  { 'microsoft', 5, [==[451 4.7.500 Server busy. Please try again later from [203.0.113.10]. (S77714) [BL6PEPF0001AB50.namprd04.prod.outlook.com 2024-07-14T14:44:43.083Z 08DCA36F759CD546]]==] }, -- Microsoft (Exchange Online)
  { 'microsoft', 0, [==[550 Requested action not taken: mailbox unavailable (-0000000022:2222:-0000000022)]==] }, -- Microsoft (Outlook.com)
  { 'microsoft', 0, [==[554 Transaction failed]==] }, -- Microsoft (Outlook.com)
  { 'yahoo', 1, [==[421 4.7.0 [TSS04] Messages from 192.0.2.192 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.verizonmedia.com/error-codes]==] }, -- Yahoo
  { 'yahoo', 0, [==[554 5.7.9 Message not accepted for policy reasons. See https://postmaster.verizonmedia.com/error-codes]==] }, -- Yahoo (AOL MX)
  { 'yahoo', 0, [==[554 delivery error: dd This user doesn't have a yahoo.com account (this-local-part-does-not-exist@yahoo.com) [0] - mta1061.mail.ne1.yahoo.com]==] }, -- Yahoo
  { 'yahoo', 3, [==[421 4.7.1 [TS03] All messages from 100.100.100.100 will be permanently deferred; Retrying will NOT succeed. See http://postmaster.yahoo.com/421-ts03.html]==] }, -- Yahoo
  { 'yahoo', 4, [==[553 5.7.1 [BL21] Connections will not be accepted from x.xx.xx.xx, because the ip is in Spamhaus's list; see http://postmaster.yahoo.com/550-bl23.html]==] }, -- Yahoo
  { 'yahoo', 0, [==[554 delivery error: dd Sorry, your message to example@example.com cannot be delivered. This mailbox is disabled (554.30). - example.yahoo.com]==] }, -- Yahoo
  { 'yahoo', 0, [==[554 Message not allowed - [PH01] Email not accepted for policy reasons. Please visit https://postmaster.yahooinc.com/error-codes]==] }, -- Yahoo
  { 'yahoo', 0, [==[554 Message not allowed - Headers are not RFC compliant[291]]==] }, -- Yahoo
  { 'yahoo', 2, [==[421 Message from 100.100.100.100 temporarily deferred - 4.16.50. Please refer to http://help.yahoo.com/help/us/mail/defer/defer-06.html]==] }, -- Yahoo
  { 'yahoo', 0, [==[421 Max message per connection reached, closing transmission channel]==] }, -- Yahoo
  { 'yahoo', 0, [==[450 User is receiving mail too quickly]==] }, -- Yahoo
  { 'yahoo', 5, [==[451 example.yahoo.com Resources temporarily unavailable. Please try again later [#4.16.1].]==] }, -- Yahoo
  { 'yahoo', 0, [==[451 Message temporarily deferred due to unresolvable RFC.5321 from domain.]==] }, -- Yahoo
  { 'yahoo', 0, [==[550 MAILBOX NOT FOUND]==] }, -- AOL (Yahoo)
  { 'apple', 0, [==[550 5.1.6 recipient no longer on server: kijitora@example.jp]==] }, -- Apple iCloud
  { 'apple', 0, [==[554 5.7.1 Your message was rejected due to libsisimai.org's DMARC policy. See https://support.apple.com/en-us/HT204137 for info]==] }, -- Apple iCloud
  { 'apple', 0, [==[552 5.2.2 <pseudo-local-part-of-apple-icloud-mail@icloud.com>: user is over quota]==] }, -- Apple iCloud
  { 'apple', 0, [==[550 5.1.1 <pseudo-local-part-of-icloud@icloud.com>: inactive email address]==] }, -- Apple iCloud
  { 'apple', 0, [==[550 5.1.1 <test-of-zhzkndneko@privaterelay.appleid.com>: user not found]==] }, -- Apple iCloud (Private Relay)
  { 'apple', 2, [==[554 st11p00im-smtpin013.me.com ESMTP not accepting connections]==] }, -- Apple iCloud
  { 'apple', 3, [==[550 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137]==] }, -- Apple iCloud
  { 'apple', 1, [==[421 4.7.1 Messages to example@icloud.com deferred due to excessive volume. Try again later - https://support.apple.com/en-us/HT204137]==] }, -- Apple iCloud
  { 'apple', 5, [==[550 5.7.1 Your email was rejected due to having a domain present in the Spamhaus DBL -- see https://www.spamhaus.org/dbl/]==] }, -- Apple iCloud
  { 'apple', 6, [==[451 4.7.1 Service unavailable - try again later]==] }, -- Apple iCloud
  { 'apple', 4, [==[550 5.7.0 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.1.2]==] }, -- Apple iCloud (Proofpoint)
  { 'gmx', 1, [==[554-gmx.net (mxgmx104) Nemesis ESMTP Service not available 554-No SMTP service 554-IP address is block listed. 554 For explanation visit https://postmaster.gmx.net/en/case?c=r0201&i=ip&v=198.51.100.42&r=1MNcgj-1ue23t3pyV-00S2YR]==] }, -- GMX
  { 'gmx', 2, [==[554-mail.com (mxgmxus002) Nemesis ESMTP Service not available 554-No SMTP service 554-Bad DNS PTR resource record. 554 For explanation visit http://postmaster.gmx.com/en/error-messages?ip=192.0.2.22&c=rdns]==] }, -- mail.com (GMX)
  { 'gmx', 0, [==[550 <example@example.com>: Requested action not taken: mailbox unavailable]==] }, -- GMX/WEB.DE (United Internet)
  { 'gmx', 0, [==[550 <example@example.com>: Reject due to SPF policy. The originating IP of the message is not permitted by the domain owner]==] }, -- GMX/WEB.DE (United Internet)
  { 'gmx', 0, [==[501 Syntax error in parameters or arguments]==] }, -- GMX/WEB.DE (United Internet)
  { 'orange', 0, [==[550 5.1.1 Adresse d au moins un destinataire invalide. Invalid recipient. OFR_416 [416]]==] }, -- Orange
  { 'orange', 1, [==[550 mwinf5c04 ME Adresse IP source bloquee pour incident de spam. Client host blocked for spamming issues. OFR006_102 Ref http://csi.cloudmark.com/reset-request/?ip=10.0.0.1 [102]]==] }, -- Orange
  { 'orange', 2, [==[421 mwinf5c77 ME Service refuse. Veuillez essayer plus tard. Service refused, please try later. OFR_999 [999]]==] }, -- Orange
  { 'orange', 2, [==[421 4.2.0 Service refuse. Veuillez essayer plus tard. Service refused, please try later. OFR005_505 [505]]==] }, -- Orange
  { 'orange', 3, [==[421 mwinf5c79 ME Trop de connexions, veuillez verifier votre configuration.]==] }, -- Orange
  { 'orange', 0, [==[501 5.1.0 Emetteur invalide. Invalid Sender. OFR004_405 [405]]==] }, -- Orange
  { 'other', 0, [==[550 5.5.0 Adresse destinataire invalide. Invalid recipient. LPN007_416]==] }, -- La Poste (laposte.net)
  { 'other', 0, [==[550 5.5.0 Le compte du destinataire est bloque. The recipient account is blocked. LPN007_426]==] }, -- La Poste (laposte.net)
  { 'other', 0, [==[554 Host network not allowed - https://community.mimecast.com/docs/DOC-1369#554 [z7qZw5BPd1zlDYHka4589ru.us222]]==] }, -- Mimecast
  { 'other', 0, [==[554 email rejected due to security policies - MCSpamSignature.sa.2.2]==] }, -- Mimecast
  { 'other', 0, [==[451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451 [__8EfOo0Oty2fp09HOzgSw.us354]]==] }, -- Mimecast
  { 'other', 0, [==[421 Sender address blocked]==] }, -- Mimecast
  { 'other', 0, [==[421 Unable to process connection at this time]==] }, -- Mimecast
  { 'other', 0, [==[554 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=192.0.2.225]==] }, -- Proofpoint
  { 'other', 0, [==[421 Deferred - see https://ipcheck.proofpoint.com/?ip=x.x.x.x Rejected by recipient's email security filter IP_REPUTATION Ask the recipient to allowlist your sending IP addresses.]==] }, -- Proofpoint
  { 'other', 0, [==[554 Service unavailable; Client host [server1.mail.com] blocked using Barracuda Reputation; http://bbl.barracudacentral.com/q.cgi?ip=192.168.1.1]==] }, -- Barracuda
  { 'other', 0, [==[550 5.7.1 Message content rejected, UBE, id=00000-22-225]==] }, -- Barracuda
  { 'other', 0, [==[550 cuda_nsu 5.1.1 <email@example.com> Recipient address rejected: User unknown]==] }, -- Barracuda
  { 'other', 0, [==[550 rejecting spoofed message]==] }, -- Barracuda
  { 'other', 0, [==[554 5.7.1 <kijitora@example.org>: Relay access denied]==] }, -- Generic (Postfix receiver)
  { 'other', 0, [==[550 Virus Detected; Content Rejected]==] }, -- Generic (content filter)
  -- From the providers' documentation (no sample in the replies corpus):
  { 'google', 4, [==[421 4.7.0 [192.0.2.1] Our system has detected that this message is suspicious due to the very low reputation of the sending domain. To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/188131 for more information. - gsmtp]==] }, -- smtp.codes/google
  { 'gmx', 3, "421-gmx.net (mxgmx117) Nemesis ESMTP Service not available\r\n421-Service unavailable\r\n"
    .. "421-Reject due to policy restrictions.\r\n421 For explanation visit https://postmaster.gmx.net/en/case?c=hi" }, -- postmaster.gmx.net rate limit
}

local function regexes(rule)
  return type(rule.regex) == 'table' and rule.regex or { rule.regex }
end

-- Whether a regex of rule matches reply: tern.bounce compiles it (PCRE2, JIT, caseless) and
-- matches it over the normalised reply, as the shaping automation does.
local function matches(rule, reply)
  local list = {}
  for i, re in ipairs(regexes(rule)) do
    list[i] = tern.bounce.rule { name = 'r' .. i, category = 'other', pattern = re }
  end
  tern.bounce.configure { rules = list }
  return (select(2, tern.bounce.classify(reply))) ~= nil
end

local function well_formed(pname, i, rule)
  local where = ('%s rule %d'):format(pname, i)
  for k in pairs(rule) do t.ok(RULE_KEYS[k], where .. ': key ' .. tostring(k) .. ' is a rule key') end
  local action = rule.action
  t.ok(ACTIONS[action] or (type(action) == 'table' and type(action.set) == 'table'),
    where .. ': a known action')
  if type(action) == 'table' then
    local ok, err = pcall(tern.make_egress_path, action.set)
    t.ok(ok, where .. ': its set is a valid path config ' .. tostring(err))
  end
  t.ok(type(rule.duration) == 'string' and rule.duration:match('^%d+[smhd]$'), where .. ': a duration')
  t.ok(rule.trigger == nil or rule.trigger == 'immediate' or rule.trigger:match('^%d+/%d+[smhd]$'),
    where .. ': trigger immediate or N/period')
  for _, re in ipairs(regexes(rule)) do
    local ok, err = pcall(tern.bounce.rule, { name = 'x', category = 'other', pattern = re })
    ok = ok and pcall(tern.bounce.configure, { rules = { err } })
    t.ok(ok, where .. ': regex compiles: ' .. re)
  end
end

tern.on('main', function()
  local names = {}
  for pname, p in pairs(defaults) do
    names[#names + 1] = pname
    t.ok(type(p.mx_suffixes) == 'table' and #p.mx_suffixes > 0, pname .. ' has MX suffixes')
    for i, rule in ipairs(p.automation) do well_formed(pname, i, rule) end
  end
  table.sort(names)
  t.eq(table.concat(names, ','), 'apple,gmx,google,microsoft,orange,yahoo',
    'rules for Gmail, Microsoft, Yahoo/AOL, Apple, GMX/WEB.DE and Orange')

  local answered = {}
  for _, e in ipairs(EXAMPLES) do
    local own, want, reply = e[1], e[2], e[3]
    for pname, p in pairs(defaults) do
      for i, rule in ipairs(p.automation) do
        local expect = pname == own and i == want
        if matches(rule, reply) ~= expect then
          t.ok(false, ('%s rule %d %s: %s'):format(pname, i, expect and 'must answer' or 'must not answer',
            reply:sub(1, 100)))
        elseif expect then
          answered[pname .. i] = true
        end
      end
    end
  end
  for pname, p in pairs(defaults) do
    for i in ipairs(p.automation) do
      t.ok(answered[pname .. i], ('%s rule %d answers one of its example replies'):format(pname, i))
    end
  end
  t.ok(#EXAMPLES > 90, 'every example reply was checked against every rule')
  return t.done()
end)
