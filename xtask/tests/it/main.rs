//! xtask's integration tests: cheap checks over the whole repository.

mod hygiene;
