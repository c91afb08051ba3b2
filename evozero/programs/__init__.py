"""Programs: the instruction rows, the three-function program and its text and JSON forms,
and the operators that make and change programs.
"""
