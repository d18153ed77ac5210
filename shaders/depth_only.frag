#version 330 core
// Writes depth only (colour writes are masked off while it runs).
void main() {
}
