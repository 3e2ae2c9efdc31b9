-- SPDX-License-Identifier: MIT
-- Delivery limits per (source, site), read by tern.shaping: defaults, then the
-- provider whose MX suffix matches, then the domain, then the source.
-- `automation` rules react to the replies of the paths they cover.
return {
  defaults = { connection_limit = 5, max_message_rate = '60/min', max_deliveries_per_connection = 100,
               enable_tls = 'opportunistic' },
  providers = {
    google = { mx_suffixes = { '.google.com', '.googlemail.com' },
               connection_limit = 15, max_message_rate = '120/min',
               automation = {
                 -- "421 4.7.28 ... unusual rate of unsolicited mail from your IP": rest this IP.
                 { regex = '4\\.7\\.28', action = 'suspend', duration = '1h' },
               } },
    microsoft = { mx_suffixes = { '.outlook.com', '.protection.outlook.com' },
                  connection_limit = 25, max_message_rate = '300/min' },
    yahoo = { mx_suffixes = { '.yahoodns.net' }, connection_limit = 10, max_message_rate = '100/min',
              automation = {
                -- "421 4.7.0 [TSS04] ... temporarily deferred": slow down (PowerMTA's backoff mode).
                { regex = 'TSS04', action = { set = { max_message_rate = '30/min', connection_limit = 2 } },
                  duration = '30m', trigger = '3/5m' },
              } },
  },
  domains = {
    ['example-bank.com'] = { enable_tls = 'required' },
  },
  sources = {
    ['ip-9'] = { connection_limit = 2, max_message_rate = '20/min' },
  },
}
