"""Every work-around of a faust-streaming or rocksdict defect, and the only code that touches
Faust's private members."""
