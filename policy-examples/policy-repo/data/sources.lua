-- SPDX-License-Identifier: MIT
-- Source IPs and the pools that share them out by weight.
return {
  relay_hosts = { '127.0.0.0/8', '10.0.0.0/8' },
  sources = {
    ['ip-1'] = { address = '192.0.2.1', ehlo = 'o1.mta.example.com' },
    ['ip-2'] = { address = '192.0.2.2', ehlo = 'o2.mta.example.com' },
    ['ip-3'] = { address = '192.0.2.3', ehlo = 'o3.mta.example.com' },
    ['ip-9'] = { address = '192.0.2.9', ehlo = 'o9.mta.example.com' },
  },
  pools = {
    shared = { { name = 'ip-1', weight = 10 }, { name = 'ip-2', weight = 10 } },
    -- ip-9 is new: it warms up on the transactional pool with a small weight.
    transactional = { { name = 'ip-3', weight = 10 }, { name = 'ip-9', weight = 1 } },
  },
}
