//! Small Hub-layout parquet files for the tests (feature `hub`).

use std::path::Path;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// The schema of `ylecun/mnist`'s parquet files (the `datasets` Image feature).
const SCHEMA: &str = "
message schema {
  optional group image {
optional binary bytes;
optional binary path (STRING);
  }
  optional int64 label;
}";

/// A PNG of `side x side` grey pixels, pixel `p` = `(seed + p) % 256`.
pub fn png(side: u32, seed: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        image::Luma([((seed + y * side + x) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// Writes rows `(png bytes, label)` with null `image.path`, as the hub's files have.
pub fn write_parquet(path: &Path, rows: &[(Vec<u8>, i64)]) {
    let schema = Arc::new(parse_message_type(SCHEMA).expect("schema"));
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).expect("create");
    let mut writer = SerializedFileWriter::new(file, schema, props).expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    // Column 1: image.bytes, all present (definition level 2).
    let mut col = group.next_column().expect("col").expect("image.bytes");
    let bytes: Vec<ByteArray> = rows
        .iter()
        .map(|(b, _)| ByteArray::from(b.clone()))
        .collect();
    col.typed::<ByteArrayType>()
        .write_batch(&bytes, Some(&vec![2; rows.len()]), None)
        .expect("write");
    col.close().expect("close");
    // Column 2: image.path, all null inside a present struct (definition level 1).
    let mut col = group.next_column().expect("col").expect("image.path");
    col.typed::<ByteArrayType>()
        .write_batch(&[], Some(&vec![1; rows.len()]), None)
        .expect("write");
    col.close().expect("close");
    // Column 3: label.
    let mut col = group.next_column().expect("col").expect("label");
    let labels: Vec<i64> = rows.iter().map(|(_, l)| *l).collect();
    col.typed::<Int64Type>()
        .write_batch(&labels, Some(&vec![1; rows.len()]), None)
        .expect("write");
    col.close().expect("close");
    group.close().expect("close group");
    writer.close().expect("close file");
}
