//! The hive as a Secure9P backend: the session engine's requests mapped onto
//! the same path-level operations the console uses, so every transport
//! meets the same policy, tickets and counters.

use crate::hive::{Credential, Hive, OpenFile, SessionId, Transport};
use cohesix_ninep::{AttachRequest, Backend, DirEntry, NodeStat, NsError, OpenMode};

impl Backend for Hive {
    type Session = SessionId;
    type Open = OpenFile;

    fn attach(&mut self, req: AttachRequest<'_>) -> Result<SessionId, NsError> {
        let ticket = match req.auth {
            Some(bytes) => std::str::from_utf8(bytes).map_err(|_| {
                self.count_refusal(cohesix_ninep::ErrorClass::Permission);
                NsError::permission("invalid-ticket")
            })?,
            None => req.aname,
        };
        // Linux's v9fs in its default access modes attaches once per local
        // user with an empty uname; the signed ticket then names the role.
        let role = match req.uname {
            "" => cohesix_ticket::peek_role(ticket.trim()).map_or("", |r| r.as_str()),
            uname => uname,
        };
        Hive::attach(self, role, Credential::Ticket(ticket), Transport::NineP)
    }

    fn detach(&mut self, session: SessionId) {
        Hive::detach(self, session);
    }

    fn stat(&mut self, session: SessionId, path: &str) -> Result<NodeStat, NsError> {
        self.stat_path(session, path)
    }

    fn open(
        &mut self,
        session: SessionId,
        path: &str,
        mode: OpenMode,
    ) -> Result<OpenFile, NsError> {
        self.open_path(session, path, mode)
    }

    fn read(
        &mut self,
        session: SessionId,
        open: &mut OpenFile,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        self.read_open(session, open, offset, count, out)
    }

    fn write(
        &mut self,
        session: SessionId,
        open: &mut OpenFile,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, NsError> {
        // Append-only files ignore the client's offset (SURFACES §2); an
        // artifact upload checks it (docs/telemetry.md).
        self.write_open_at(session, open, offset, data)
            .map(|o| o.bytes)
    }

    fn readdir(&mut self, session: SessionId, path: &str) -> Result<Vec<DirEntry>, NsError> {
        let entries = self.list(session, path)?;
        Ok(entries
            .into_iter()
            .map(|(name, stat)| DirEntry {
                name,
                qid: stat.qid,
            })
            .collect())
    }

    fn clunk(&mut self, session: SessionId, open: OpenFile) {
        self.release_open(session, open);
    }
}
