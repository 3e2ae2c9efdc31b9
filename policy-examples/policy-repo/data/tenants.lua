-- SPDX-License-Identifier: MIT
-- Who may send, and through which pool.
return {
  default = { pool = 'shared' },
  acme = { pool = 'shared' },
  billing = { pool = 'transactional', max_age = '1d' },
}
