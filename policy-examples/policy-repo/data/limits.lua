-- SPDX-License-Identifier: MIT
-- Delivery limits per (source, site), read by tern.shaping: defaults, then the
-- provider whose MX suffix matches, then the domain, then the source.
return {
  defaults = { connection_limit = 5, max_message_rate = '60/min', max_deliveries_per_connection = 100,
               enable_tls = 'opportunistic' },
  providers = {
    google = { mx_suffixes = { '.google.com', '.googlemail.com' },
               connection_limit = 15, max_message_rate = '120/min' },
    microsoft = { mx_suffixes = { '.outlook.com', '.protection.outlook.com' },
                  connection_limit = 25, max_message_rate = '300/min' },
    yahoo = { mx_suffixes = { '.yahoodns.net' }, connection_limit = 10, max_message_rate = '100/min' },
  },
  domains = {
    ['example-bank.com'] = { enable_tls = 'required' },
  },
  sources = {
    ['ip-9'] = { connection_limit = 2, max_message_rate = '20/min' },
  },
}
