//! The hand-over itself: detect the era, gate, back up, adopt or replace, journal, roll back.
