fn main() {
    println!("usage: fftop [OPTIONS] [TARGET]...");
}
