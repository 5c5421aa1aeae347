"""ffprobe/ffmpeg: what a file contains, what a browser can play, HLS output."""
