//! Integration tests of warden-fuzz: the fuzz corpora, replayed.

mod replay;
