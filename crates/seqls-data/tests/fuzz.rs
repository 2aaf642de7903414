//! Arbitrary bytes never make the corpus readers panic: they give pairs or an error naming the file.

use proptest::prelude::*;
use seqls_data::read::{read_lines, read_parallel, read_tsv, split_lines};
use std::path::Path;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn readers_never_panic(a in prop::collection::vec(any::<u8>(), 0..300),
                           b in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        std::fs::write(&pa, &a).unwrap();
        std::fs::write(&pb, &b).unwrap();
        match read_lines(&pa) {
            Ok(lines) => prop_assert!(lines.iter().all(|l| !l.contains('\n'))),
            Err(e) => prop_assert!(e.to_string().contains("a.txt"), "{}", e),
        }
        if let Err(e) = read_parallel(&pa, &pb) {
            let text = e.to_string();
            prop_assert!(text.contains("a.txt") || text.contains("b.txt"), "{}", text);
        }
        if let Err(e) = read_tsv(&pa) {
            prop_assert!(e.to_string().contains("a.txt"), "{}", e);
        }
        let _ = split_lines(&b, Path::new("<stdin>"));
        // The same bytes gzipped are read the same way.
        let gz = dir.path().join("a.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &a).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        prop_assert_eq!(read_lines(&gz).ok(), read_lines(&pa).ok());
        // Garbage that claims to be gzip is an error, not a panic.
        let fake = dir.path().join("fake.gz");
        std::fs::write(&fake, &b).unwrap();
        let _ = read_lines(&fake);
    }
}
