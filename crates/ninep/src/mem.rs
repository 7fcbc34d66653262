//! A small in-memory [`Backend`] for tests, fuzzing and client fixtures.
//!
//! It holds a fixed tree of directories, read-only files and append-only
//! files, can demand one ticket at attach and can deny chosen paths, and it
//! counts the calls the engine makes so tests can check them. It has no
//! roles, no policy and no persistence: it is a fixture, not the hive's
//! namespace. Built only for tests and with the `mem-backend` feature.

use crate::backend::{qid_type, AttachRequest, Backend, DirEntry, NodeStat, OpenMode, Qid};
use crate::error::NsError;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

/// Most bytes an append-only file grows to before appends are refused.
pub const MEM_FILE_CAP: usize = 1 << 20;

/// Calls the engine made, for assertions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    pub attaches: usize,
    pub detaches: usize,
    pub opens: usize,
    pub clunks: usize,
    pub readdirs: usize,
}

/// The last attach request, with its ticket bytes copied out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenAttach {
    pub uname: String,
    pub aname: String,
    pub auth: Option<Vec<u8>>,
}

enum Kind {
    Dir,
    File { data: Vec<u8>, append: bool },
}

struct MemNode {
    id: u64,
    kind: Kind,
}

/// An open fid of a [`MemBackend`].
#[derive(Debug)]
pub struct MemOpen {
    path: String,
}

/// The in-memory tree.
pub struct MemBackend {
    nodes: BTreeMap<String, MemNode>,
    denied: BTreeSet<String>,
    ticket: Option<String>,
    next_session: u32,
    stats: MemStats,
    last_attach: Option<SeenAttach>,
}

impl Default for MemBackend {
    fn default() -> MemBackend {
        MemBackend::new()
    }
}

impl MemBackend {
    /// A tree holding only the root directory.
    pub fn new() -> MemBackend {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            String::from("/"),
            MemNode {
                id: 1,
                kind: Kind::Dir,
            },
        );
        MemBackend {
            nodes,
            denied: BTreeSet::new(),
            ticket: None,
            next_session: 1,
            stats: MemStats::default(),
            last_attach: None,
        }
    }

    /// Adds a directory (and any missing parents).
    pub fn dir(&mut self, path: &str) -> &mut MemBackend {
        self.insert(path, Kind::Dir)
    }

    /// Adds a read-only file with `content`.
    pub fn file(&mut self, path: &str, content: &[u8]) -> &mut MemBackend {
        self.insert(
            path,
            Kind::File {
                data: content.to_vec(),
                append: false,
            },
        )
    }

    /// Adds an empty append-only file.
    pub fn append_file(&mut self, path: &str) -> &mut MemBackend {
        self.insert(
            path,
            Kind::File {
                data: Vec::new(),
                append: true,
            },
        )
    }

    /// Makes `path` answer `Permission` to every lookup.
    pub fn deny(&mut self, path: &str) -> &mut MemBackend {
        self.denied.insert(String::from(path));
        self
    }

    /// Demands `ticket` as the aname or as the auth fid's bytes.
    pub fn require_ticket(&mut self, ticket: &str) -> &mut MemBackend {
        self.ticket = Some(String::from(ticket));
        self
    }

    pub fn stats(&self) -> MemStats {
        self.stats
    }

    pub fn last_attach(&self) -> Option<&SeenAttach> {
        self.last_attach.as_ref()
    }

    /// The bytes of a file, if `path` is one.
    pub fn contents(&self, path: &str) -> Option<&[u8]> {
        match &self.nodes.get(path)?.kind {
            Kind::File { data, .. } => Some(data),
            Kind::Dir => None,
        }
    }

    fn insert(&mut self, path: &str, kind: Kind) -> &mut MemBackend {
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !parent.is_empty() && !self.nodes.contains_key(parent) {
                self.dir(parent);
            }
        }
        let id = u64::try_from(self.nodes.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        self.nodes.insert(String::from(path), MemNode { id, kind });
        self
    }

    fn lookup(&self, path: &str) -> Result<&MemNode, NsError> {
        if self.denied.contains(path) {
            return Err(NsError::permission("denied"));
        }
        self.nodes
            .get(path)
            .ok_or(NsError::not_found("no-such-path"))
    }

    fn ticket_ok(&self, req: &AttachRequest<'_>) -> bool {
        match &self.ticket {
            None => true,
            Some(t) => req
                .auth
                .map_or(req.aname == t, |bytes| bytes == t.as_bytes()),
        }
    }
}

fn stat_of(node: &MemNode) -> NodeStat {
    let (ty, mode, size) = match &node.kind {
        Kind::Dir => (qid_type::DIR, 0o040_555, 0),
        Kind::File {
            data,
            append: false,
        } => (qid_type::FILE, 0o100_444, data.len()),
        Kind::File { data, append: true } => (qid_type::APPEND, 0o100_644, data.len()),
    };
    let size = u64::try_from(size).unwrap_or(u64::MAX);
    NodeStat {
        qid: Qid {
            ty,
            version: 0,
            path: node.id,
        },
        mode,
        size,
        mtime_ms: 0,
    }
}

fn parent_of(path: &str) -> Option<&str> {
    match path.rsplit_once('/')? {
        (_, "") => None,
        ("", _) => Some("/"),
        (parent, _) => Some(parent),
    }
}

impl Backend for MemBackend {
    type Session = u32;
    type Open = MemOpen;

    fn attach(&mut self, req: AttachRequest<'_>) -> Result<u32, NsError> {
        self.last_attach = Some(SeenAttach {
            uname: String::from(req.uname),
            aname: String::from(req.aname),
            auth: req.auth.map(<[u8]>::to_vec),
        });
        if req.uname.is_empty() {
            return Err(NsError::invalid("no-role"));
        }
        if !self.ticket_ok(&req) {
            return Err(NsError::permission("bad-ticket"));
        }
        self.stats.attaches += 1;
        let session = self.next_session;
        self.next_session = self.next_session.wrapping_add(1);
        Ok(session)
    }

    fn detach(&mut self, _session: u32) {
        self.stats.detaches += 1;
    }

    fn stat(&mut self, _session: u32, path: &str) -> Result<NodeStat, NsError> {
        self.lookup(path).map(stat_of)
    }

    fn open(&mut self, _session: u32, path: &str, mode: OpenMode) -> Result<MemOpen, NsError> {
        match &self.lookup(path)?.kind {
            Kind::Dir => return Err(NsError::invalid("is-a-directory")),
            Kind::File { append: false, .. } if mode.writes() => {
                return Err(NsError::permission("read-only"))
            }
            Kind::File { .. } => {}
        }
        self.stats.opens += 1;
        Ok(MemOpen {
            path: String::from(path),
        })
    }

    fn read(
        &mut self,
        _session: u32,
        open: &mut MemOpen,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), NsError> {
        let data = self.contents(&open.path).ok_or(NsError::closed("gone"))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
        out.extend_from_slice(&data[start..end.min(data.len())]);
        Ok(())
    }

    fn write(
        &mut self,
        _session: u32,
        open: &mut MemOpen,
        _offset: u64,
        data: &[u8],
    ) -> Result<u32, NsError> {
        let node = self
            .nodes
            .get_mut(&open.path)
            .ok_or(NsError::closed("gone"))?;
        let Kind::File {
            data: content,
            append: true,
        } = &mut node.kind
        else {
            return Err(NsError::permission("read-only"));
        };
        // Appends ignore the offset: the end of the file is the only place.
        if content.len().saturating_add(data.len()) > MEM_FILE_CAP {
            return Err(NsError::quota("file-full"));
        }
        content.extend_from_slice(data);
        u32::try_from(data.len()).map_err(|_| NsError::too_big("write"))
    }

    fn readdir(&mut self, _session: u32, path: &str) -> Result<Vec<DirEntry>, NsError> {
        if !matches!(self.lookup(path)?.kind, Kind::Dir) {
            return Err(NsError::invalid("not-a-directory"));
        }
        self.stats.readdirs += 1;
        let entries = self
            .nodes
            .iter()
            .filter(|(p, _)| parent_of(p) == Some(path))
            .filter_map(|(p, node)| {
                let name = p.rsplit_once('/')?.1;
                Some(DirEntry {
                    name: String::from(name),
                    qid: stat_of(node).qid,
                })
            })
            .collect();
        Ok(entries)
    }

    fn clunk(&mut self, _session: u32, _open: MemOpen) {
        self.stats.clunks += 1;
    }
}
