import { auditLogContract } from '../../test/contracts/audit-log.contract.ts';
import { SqliteAuditLog } from './sqlite-audit-log.ts';

auditLogContract('sqlite', () => {
  const log = new SqliteAuditLog({ path: ':memory:' });
  return Promise.resolve({ log, cleanup: () => log.close() });
});
