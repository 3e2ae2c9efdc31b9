-- SPDX-License-Identifier: MIT
-- tern.data.providers: the large mailbox providers as data, so that
-- `tern policy explain` and `tern policy diff` can resolve a destination's
-- site and provider without DNS (in a policy repository's CI).
--
-- Each provider has `mx`: host names its consumer domains publish as MX
-- (one site, as tern names sites: the hosts joined by commas), and
-- `domains`: consumer domains known to be hosted there. A domain missing
-- here is still explained with `--mx HOST,...`. Last checked against the
-- providers' published MX records; hosts change rarely, domains more often.
return {
  google = {
    mx = { 'gmail-smtp-in.l.google.com', 'alt1.gmail-smtp-in.l.google.com',
           'alt2.gmail-smtp-in.l.google.com', 'alt3.gmail-smtp-in.l.google.com',
           'alt4.gmail-smtp-in.l.google.com' },
    domains = { 'gmail.com', 'googlemail.com' },
  },
  microsoft = {
    mx = { 'hotmail-com.olc.protection.outlook.com' },
    domains = { 'outlook.com', 'outlook.fr', 'outlook.de', 'outlook.es', 'outlook.it',
                'outlook.co.uk', 'outlook.jp', 'outlook.com.br',
                'hotmail.com', 'hotmail.co.uk', 'hotmail.fr', 'hotmail.de', 'hotmail.it',
                'hotmail.es', 'hotmail.nl', 'hotmail.be', 'hotmail.ca', 'hotmail.com.br',
                'hotmail.com.ar', 'hotmail.com.mx', 'hotmail.co.jp', 'hotmail.se', 'hotmail.no',
                'hotmail.dk', 'hotmail.ch', 'hotmail.gr',
                'live.com', 'live.co.uk', 'live.fr', 'live.de', 'live.it', 'live.nl', 'live.be',
                'live.ca', 'live.com.au', 'live.com.mx', 'live.se', 'live.dk', 'live.no',
                'live.jp', 'live.cl', 'live.com.ar',
                'msn.com', 'passport.com', 'windowslive.com' },
  },
  yahoo = {
    mx = { 'mta5.am0.yahoodns.net', 'mta6.am0.yahoodns.net', 'mta7.am0.yahoodns.net' },
    domains = { 'yahoo.com', 'yahoo.co.uk', 'yahoo.fr', 'yahoo.de', 'yahoo.it', 'yahoo.es',
                'yahoo.ca', 'yahoo.com.au', 'yahoo.com.br', 'yahoo.com.mx', 'yahoo.com.ar',
                'yahoo.co.in', 'yahoo.co.jp', 'yahoo.com.sg', 'yahoo.com.ph', 'yahoo.gr',
                'yahoo.ie', 'yahoo.se', 'yahoo.dk', 'yahoo.no', 'yahoo.at', 'yahoo.be',
                'ymail.com', 'rocketmail.com', 'sbcglobal.net', 'att.net', 'bellsouth.net',
                'frontier.com', 'rogers.com' },
  },
  aol = {
    mx = { 'mx-aol.mail.gm0.yahoodns.net' },
    domains = { 'aol.com', 'aol.co.uk', 'aol.fr', 'aol.de', 'aim.com', 'verizon.net',
                'love.com', 'wow.com', 'games.com', 'netscape.net' },
  },
  apple = {
    mx = { 'mx01.mail.icloud.com', 'mx02.mail.icloud.com' },
    domains = { 'icloud.com', 'me.com', 'mac.com' },
  },
  gmx = {
    mx = { 'mx00.gmx.net', 'mx01.gmx.net' },
    domains = { 'gmx.net', 'gmx.de', 'gmx.at', 'gmx.ch', 'gmx.com', 'gmx.fr', 'gmx.co.uk',
                'gmx.es', 'gmx.us', 'mail.com', 'email.com' },
  },
  webde = {
    mx = { 'mx-ha03.web.de', 'mx-ha02.web.de' },
    domains = { 'web.de' },
  },
  tonline = {
    mx = { 'mx00.t-online.de', 'mx01.t-online.de' },
    domains = { 't-online.de', 'magenta.de' },
  },
  orange = {
    mx = { 'smtp-in.orange.fr' },
    domains = { 'orange.fr', 'wanadoo.fr' },
  },
  free = {
    mx = { 'mx1.free.fr', 'mx2.free.fr' },
    domains = { 'free.fr' },
  },
  sfr = {
    mx = { 'mx1.sfr.fr', 'mx2.sfr.fr' },
    domains = { 'sfr.fr', 'neuf.fr' },
  },
  laposte = {
    mx = { 'smtp-in.laposte.net' },
    domains = { 'laposte.net' },
  },
  libero = {
    mx = { 'smtp-in.libero.it' },
    domains = { 'libero.it', 'iol.it', 'inwind.it', 'blu.it' },
  },
  comcast = {
    mx = { 'mx1h1.comcast.net', 'mx2h1.comcast.net' },
    domains = { 'comcast.net' },
  },
  charter = {
    mx = { 'charter.net.inbound10.mxlogic.net' },
    domains = { 'charter.net', 'spectrum.net' },
  },
  cox = {
    mx = { 'cox.net.inbound10.mxlogic.net' },
    domains = { 'cox.net' },
  },
  yandex = {
    mx = { 'mx.yandex.ru' },
    domains = { 'yandex.ru', 'yandex.com', 'ya.ru', 'yandex.by', 'yandex.kz', 'yandex.ua' },
  },
  mailru = {
    mx = { 'mxs.mail.ru' },
    domains = { 'mail.ru', 'bk.ru', 'inbox.ru', 'list.ru' },
  },
  zoho = {
    mx = { 'mx.zoho.com', 'mx2.zoho.com' },
    domains = { 'zoho.com', 'zohomail.com' },
  },
  proton = {
    mx = { 'mail.protonmail.ch', 'mailsec.protonmail.ch' },
    domains = { 'protonmail.com', 'proton.me', 'pm.me', 'protonmail.ch' },
  },
  seznam = {
    mx = { 'mx1.seznam.cz', 'mx2.seznam.cz' },
    domains = { 'seznam.cz', 'email.cz' },
  },
  qq = {
    mx = { 'mx3.qq.com', 'mx2.qq.com', 'mx1.qq.com' },
    domains = { 'qq.com', 'foxmail.com' },
  },
  netease = {
    mx = { '163mx01.mxmail.netease.com', '163mx02.mxmail.netease.com' },
    domains = { '163.com', '126.com', 'yeah.net' },
  },
  naver = {
    mx = { 'mx1.naver.com', 'mx2.naver.com' },
    domains = { 'naver.com' },
  },
  interia = {
    mx = { 'poczta.interia.pl' },
    domains = { 'interia.pl', 'poczta.fm' },
  },
  wp = {
    mx = { 'mx.wp.pl' },
    domains = { 'wp.pl', 'o2.pl' },
  },
}
